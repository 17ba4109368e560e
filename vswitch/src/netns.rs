//! Sandboxes' network namespaces: created and bind-mounted under `<exec-root>/netns/<id>`
//! (like Docker's /var/run/docker/netns, so two daemons never collide), entered from a
//! dedicated thread (never a tokio worker: a namespace belongs to the thread that entered it),
//! and deleted by unmounting.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("netns {path}: {op}: {source}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("netns {path}: {source}")]
    Netlink {
        path: PathBuf,
        source: crate::netlink::NetlinkError,
    },
    #[error("netns {0}: the namespace thread panicked")]
    Panicked(PathBuf),
    #[error("in netns {path}: `{cmd}` failed: {stderr}")]
    Command {
        path: PathBuf,
        cmd: String,
        stderr: String,
    },
}

fn sys<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Sys {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// Create a new network namespace and pin it at `path` with a bind mount.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sys(path, "create dir"))?;
    }
    File::create(path).map_err(sys(path, "create mount point"))?;
    let p = path.to_path_buf();
    let res = std::thread::spawn(move || -> Result<(), NetnsError> {
        let sys_err = |op: &'static str| {
            let path = p.clone();
            move |source| NetnsError::Sys { path, op, source }
        };
        // SAFETY: unshare affects only this short-lived thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(sys_err("unshare")(last_err()));
        }
        let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
        let dst = cstr(&p).map_err(sys_err("path"))?;
        // SAFETY: valid C strings; a bind mount of this thread's namespace file.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(sys_err("bind mount")(last_err()));
        }
        // lo up, as Docker does for every sandbox: this thread is already inside.
        crate::netlink::loopback_up().map_err(|source| NetnsError::Netlink {
            path: p.clone(),
            source,
        })
    })
    .join()
    .map_err(|_| NetnsError::Panicked(path.to_path_buf()))?;
    if let Err(e) = res {
        let _ = delete(path);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Unmount and remove a namespace made by [`create`]. Missing is not an error.
pub fn delete(path: &Path) -> Result<(), NetnsError> {
    if !path.exists() {
        return Ok(());
    }
    let c = cstr(path).map_err(sys(path, "path"))?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = last_err();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(NetnsError::Sys {
                path: path.to_path_buf(),
                op: "umount",
                source: e,
            });
        }
    }
    std::fs::remove_file(path).map_err(sys(path, "remove"))
}

/// Whether `path` is a live namespace (a bind-mounted nsfs file).
pub fn is_namespace(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs into a zeroed struct.
    let ok = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } == 0;
    ok && st.f_type as i64 == NSFS_MAGIC && f.metadata().map(|m| m.ino()).is_ok()
}

/// Run `f` on a fresh thread that has entered the namespace at `path`. Processes spawned from
/// `f` and sockets or TAP devices it opens belong to that namespace.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let ns = File::open(path).map_err(sys(path, "open"))?;
    let p = path.to_path_buf();
    std::thread::spawn(move || -> Result<T, NetnsError> {
        // SAFETY: setns on this dedicated thread, which ends when `f` returns.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NetnsError::Sys {
                path: p,
                op: "setns",
                source: last_err(),
            });
        }
        Ok(f())
    })
    .join()
    .map_err(|_| NetnsError::Panicked(path.to_path_buf()))?
}

/// Run a command inside the namespace and require success.
pub fn run_cmd(path: &Path, argv: &[&str]) -> Result<String, NetnsError> {
    let args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let p = path.to_path_buf();
    let out = run_in(path, move || {
        Command::new(&args[0])
            .args(&args[1..])
            .stdin(std::process::Stdio::null())
            .output()
    })?
    .map_err(sys(&p, "spawn"))?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            path: p,
            cmd: argv.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prepare `cmd` so that the child enters the namespace (setns between fork and exec).
pub fn command_in(cmd: &mut Command, path: &Path) -> Result<(), NetnsError> {
    use std::os::unix::process::CommandExt;
    let ns = File::open(path).map_err(sys(path, "open"))?;
    let fd = ns.as_raw_fd();
    // SAFETY: only setns(2) runs in the child; the closure owns the file so the fd stays open.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &ns;
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}
