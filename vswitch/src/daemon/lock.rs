//! One daemon per data root: an exclusive `flock` on `<data-root>/vswitchd.lock`, taken with
//! a bounded wait, then a bounded wait until the previous holder is really gone.
//!
//! A killed daemon's lock is released when the kernel closes that one fd, which can happen
//! before its TAP devices, the DNS sockets on 127.0.0.11:53 and its listeners are closed (the
//! fds of a dying process are closed one by one). The holder's pid and start time are kept in
//! the file, so the next daemon waits until that process has no fds left (gone, or a zombie,
//! which has closed them all) before it restores anything.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name of the lock, inside the data root.
pub const LOCK_FILE: &str = "vswitchd.lock";
/// How long to wait for another daemon to release the lock (a predecessor that is exiting).
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long to wait, after taking the lock, until the predecessor's fds are all closed.
pub const PREDECESSOR_WAIT: Duration = Duration::from_secs(10);
/// Poll interval of both waits.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data root {root} is in use by another vswitchd (pid {pid}); waited {waited:?} for it to exit"
    )]
    Busy {
        root: PathBuf,
        pid: String,
        waited: Duration,
    },
    #[error(
        "data root {root}: the previous vswitchd (pid {pid}) released its lock but still holds its devices after {waited:?}"
    )]
    PredecessorAlive {
        root: PathBuf,
        pid: u32,
        waited: Duration,
    },
    #[error("lock file {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataRootLock {
    _file: File,
}

/// Who held the lock last, as written in the file: `PID STARTTIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub start_time: u64,
}

impl Holder {
    pub fn parse(text: &str) -> Option<Holder> {
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start_time = it.next()?.parse().ok()?;
        Some(Holder { pid, start_time })
    }

    fn render(&self) -> String {
        format!("{} {}\n", self.pid, self.start_time)
    }

    /// This process.
    fn me() -> Option<Holder> {
        let pid = std::process::id();
        start_time(pid).map(|start_time| Holder { pid, start_time })
    }

    /// Whether this process still exists and still has open fds (not yet a zombie).
    fn holds_fds(&self) -> bool {
        if start_time(self.pid) != Some(self.start_time) {
            return false; // gone (or the pid was reused)
        }
        match std::fs::read_dir(format!("/proc/{}/fd", self.pid)) {
            Ok(mut rd) => rd.next().is_some(),
            Err(_) => false,
        }
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&s)
}

/// The start time in a /proc/PID/stat line; the command (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl DataRootLock {
    /// Take the data root's lock (bounded wait), then wait (bounded) until the previous
    /// holder has closed every fd, and record this process as the holder.
    pub fn acquire(data_root: &Path) -> Result<DataRootLock, LockError> {
        Self::acquire_with(data_root, LOCK_WAIT, PREDECESSOR_WAIT)
    }

    pub fn acquire_with(
        data_root: &Path,
        lock_wait: Duration,
        predecessor_wait: Duration,
    ) -> Result<DataRootLock, LockError> {
        let path = data_root.join(LOCK_FILE);
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| LockError::Io { path, op, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        let t0 = Instant::now();
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io("flock")(e));
            }
            if t0.elapsed() >= lock_wait {
                let pid = read_holder(&mut file)
                    .map(|h| h.pid.to_string())
                    .unwrap_or_else(|| "unknown".into());
                return Err(LockError::Busy {
                    root: data_root.to_path_buf(),
                    pid,
                    waited: lock_wait,
                });
            }
            std::thread::sleep(POLL);
        }
        if t0.elapsed() >= POLL {
            tracing::info!(
                "waited {:?} for the previous vswitchd to release {}",
                t0.elapsed(),
                path.display()
            );
        }
        if let Some(prev) = read_holder(&mut file) {
            if prev.pid != std::process::id() {
                let t1 = Instant::now();
                let mut logged = false;
                while prev.holds_fds() {
                    if t1.elapsed() >= predecessor_wait {
                        return Err(LockError::PredecessorAlive {
                            root: data_root.to_path_buf(),
                            pid: prev.pid,
                            waited: predecessor_wait,
                        });
                    }
                    if !logged {
                        tracing::info!(
                            "waiting for the previous vswitchd (pid {}) to close its devices",
                            prev.pid
                        );
                        logged = true;
                    }
                    std::thread::sleep(POLL);
                }
                if logged {
                    tracing::info!("the previous vswitchd (pid {}) is gone", prev.pid);
                }
            }
        }
        if let Some(me) = Holder::me() {
            file.set_len(0).map_err(io("truncate"))?;
            file.rewind().map_err(io("seek"))?;
            file.write_all(me.render().as_bytes())
                .map_err(io("write"))?;
        }
        Ok(DataRootLock { _file: file })
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    Holder::parse(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 1000 10";
        assert_eq!(parse_start_time(stat), Some(98765));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1"), None);
        assert!(start_time(std::process::id()).is_some());
    }

    #[test]
    fn holder_roundtrip_and_bad_text() {
        let h = Holder {
            pid: 42,
            start_time: 7,
        };
        assert_eq!(Holder::parse(&h.render()), Some(h));
        assert_eq!(Holder::parse(""), None);
        assert_eq!(Holder::parse("x y"), None);
    }

    #[test]
    fn a_zombie_holds_no_fds_and_a_reused_pid_is_not_the_holder() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let h = Holder {
            pid,
            start_time: start_time(pid).unwrap(),
        };
        assert!(h.holds_fds());
        let other = Holder {
            start_time: h.start_time + 1,
            ..h
        };
        assert!(
            !other.holds_fds(),
            "a different start time is another process"
        );
        // SAFETY: kill(2) on our own child; not reaped yet, so it stays a zombie.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.holds_fds() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        assert!(
            !h.holds_fds(),
            "a killed process (zombie) has closed its fds"
        );
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "still a zombie"
        );
        child.wait().unwrap();
        assert!(!h.holds_fds());
    }

    #[test]
    fn second_lock_is_refused_with_the_holders_pid_then_free_after_drop() {
        let dir = std::env::temp_dir().join(format!("vswitch-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DataRootLock::acquire_with(&dir, POLL, POLL).unwrap();
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        let e = DataRootLock::acquire_with(&dir, Duration::from_millis(100), POLL).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        let again = DataRootLock::acquire_with(&dir, POLL, POLL).unwrap();
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
