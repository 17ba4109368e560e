//! Sandbox plumbing: a port's TAP created directly inside the sandbox's namespace as `ethN`
//! (no move, no rename), its address, MTU and routes; the default route (handover); the
//! processes run inside; the host-side interface of a bridge network.

use crate::netns::{self, NetnsError};
use crate::port::tap::{Tap, TapError};
use ipam::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `rm` waits for a sandbox's processes after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("{0}")]
    Other(String),
}

/// What a port needs inside the sandbox.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub ifname: String,
    pub mac: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mtu: u32,
}

/// Create the TAP inside the namespace and configure it. The returned fds keep it alive:
/// closing them deletes the interface.
pub fn create_port(ns: &Path, spec: &PortSpec, queues: usize) -> Result<Tap, SandboxError> {
    let s = spec.clone();
    let tap = netns::run_in(ns, move || -> Result<Tap, SandboxError> {
        let tap = Tap::create(&s.ifname, queues)?;
        configure_link(&s)?;
        Ok(tap)
    })??;
    Ok(tap)
}

/// A veth pair: `host` here, the peer inside `ns` as `spec.ifname`, configured there; the host
/// end is driven through a packet socket.
pub fn create_veth_port(
    ns: &Path,
    host: &str,
    spec: &PortSpec,
) -> Result<crate::port::PortIo, SandboxError> {
    use crate::port::veth;
    let err = |e: veth::VethError| SandboxError::Other(e.to_string());
    veth::create_pair(host, &spec.ifname, ns).map_err(err)?;
    let s = spec.clone();
    let configured = netns::run_in(ns, move || configure_link(&s))
        .map_err(SandboxError::from)
        .and_then(|r| r);
    let file = configured.and_then(|_| veth::open_socket(host).map_err(err));
    match file {
        Ok(file) => Ok(crate::port::PortIo {
            file,
            offload: true,
            delete_on_close: Some(host.to_string()),
        }),
        Err(e) => {
            veth::delete(host);
            Err(e)
        }
    }
}

/// Address, MAC, MTU, up — run on a thread already inside the target namespace.
fn configure_link(s: &PortSpec) -> Result<(), SandboxError> {
    let mtu = s.mtu.to_string();
    ip(&[
        "link", "set", "dev", &s.ifname, "address", &s.mac, "mtu", &mtu,
    ])?;
    if let Some(a) = s.ipv6 {
        // No DAD: the switch already guarantees uniqueness, and DAD delays the address.
        ip(&["addr", "add", &a.to_string(), "dev", &s.ifname, "nodad"])?;
    }
    if let Some(a) = s.ipv4 {
        let bcast = match a {
            IpNet::V4(n) => n.broadcast().to_string(),
            IpNet::V6(_) => String::from("+"),
        };
        ip(&[
            "addr",
            "add",
            &a.to_string(),
            "broadcast",
            &bcast,
            "dev",
            &s.ifname,
        ])?;
    }
    ip(&["link", "set", "dev", &s.ifname, "up"])?;
    Ok(())
}

/// Run `ip` in the calling thread's namespace.
fn ip(args: &[&str]) -> Result<String, SandboxError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SandboxError::Other(format!("ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(SandboxError::Other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The default route a sandbox should have, per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultRoute {
    pub v4: Option<(IpAddr, String)>,
    pub v6: Option<(IpAddr, String)>,
}

/// Make the namespace's default routes exactly `want` (replace, or delete when none).
pub fn set_default_route(ns: &Path, want: &DefaultRoute) -> Result<(), SandboxError> {
    let w = want.clone();
    netns::run_in(ns, move || -> Result<(), SandboxError> {
        for (fam, r) in [("-4", &w.v4), ("-6", &w.v6)] {
            match r {
                Some((gw, dev)) => {
                    ip(&[
                        fam,
                        "route",
                        "replace",
                        "default",
                        "via",
                        &gw.to_string(),
                        "dev",
                        dev,
                    ])?;
                }
                None => {
                    // Deleting a missing route fails; that is the state we want anyway.
                    let _ = ip(&[fam, "route", "del", "default"]);
                }
            }
        }
        Ok(())
    })?
}

/// Start `argv` inside the namespace in its own session (it outlives the CLI call and the
/// daemon), output appended to `log`. Returns the pid.
pub fn spawn(
    ns: &Path,
    argv: &[String],
    log: &Path,
    resolv: Option<&Path>,
) -> Result<u32, SandboxError> {
    use std::os::unix::process::CommandExt;
    if argv.is_empty() {
        return Err(SandboxError::Other("no command given".into()));
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SandboxError::Other(format!("log {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| SandboxError::Other(format!("log: {e}")))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    netns::command_in(&mut cmd, ns)?;
    with_sandbox_mounts(&mut cmd, resolv)?;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| SandboxError::Other(format!("cannot start {}: {e}", argv[0])))?;
    let pid = child.id();
    // Reap it in the background so it never lingers as a zombie of the daemon.
    std::thread::spawn(move || {
        let mut c = child;
        let _ = c.wait();
    });
    Ok(pid)
}

/// Every process whose network namespace is the sandbox's (by inode), wherever it came from
/// (`run -d`, `exec`, or a runtime that handed the namespace over).
pub fn processes_in(ns: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(ns).map(|m| (m.dev(), m.ino())) else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
                if (m.dev(), m.ino()) == target {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Stop everything running in the namespace: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
pub fn stop_processes(ns: &Path) {
    let pids = processes_in(ns);
    for &p in &pids {
        // SAFETY: kill(2).
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && !processes_in(ns).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in processes_in(ns) {
        // SAFETY: kill(2).
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && !processes_in(ns).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Path of a sandbox's namespace under the exec root.
pub fn netns_path(exec_root: &Path, sandbox_id: &str) -> PathBuf {
    exec_root
        .join("netns")
        .join(crate::util::short_id(sandbox_id))
}

/// The host-side interface of a bridge network: a TAP in the daemon's own namespace holding
/// the gateway addresses.
pub fn create_host_iface(spec: &PortSpec, queues: usize) -> Result<Tap, SandboxError> {
    let tap = Tap::create(&spec.ifname, queues)?;
    configure_link(spec)?;
    Ok(tap)
}

/// Run a command inside a namespace given by path, with this process's stdio (for `exec`).
pub fn exec_in(
    ns: &Path,
    argv: &[String],
    resolv: Option<&Path>,
) -> Result<std::process::ExitStatus, SandboxError> {
    if argv.is_empty() {
        return Err(SandboxError::Other("no command given".into()));
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    netns::command_in(&mut cmd, ns)?;
    with_sandbox_mounts(&mut cmd, resolv)?;
    cmd.status()
        .map_err(|e| SandboxError::Other(format!("cannot run {}: {e}", argv[0])))
}

/// Give the child a private mount namespace (the `ip netns exec` convention) with a fresh
/// sysfs on /sys, so /sys/class/net lists the sandbox's own interfaces (sysfs shows the
/// network namespace of whoever mounts it: the child, after `netns::command_in`), and the
/// sandbox's resolv.conf, when it has one, bind-mounted over /etc/resolv.conf, so what runs
/// in the sandbox asks 127.0.0.11 on a user-defined network. Nothing propagates back to the
/// host (the child's mounts are slaves of the host's). Register after `netns::command_in`.
pub fn with_sandbox_mounts(cmd: &mut Command, resolv: Option<&Path>) -> Result<(), SandboxError> {
    use std::os::unix::process::CommandExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| SandboxError::Other(format!("bad path {}", p.display())))
    };
    let resolv = match resolv.filter(|p| p.exists()) {
        Some(p) => Some((c(p)?, c(Path::new(crate::host::RESOLV_CONF))?)),
        None => None,
    };
    let root = c(Path::new("/"))?;
    let sys = c(Path::new("/sys"))?;
    let sysfs = c(Path::new("sysfs"))?;
    // A read-only /sys stays read-only (as `ip netns exec` does).
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: statvfs(2) into a zeroed struct, with a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(sys.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0 {
            flags |= libc::MS_RDONLY;
        }
    }
    // SAFETY: only unshare(2), mount(2) and umount2(2) run between fork and exec, on C
    // strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // No allocation after fork (the daemon has threads): the bare errno.
            let err = std::io::Error::last_os_error;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(err());
            }
            // Keep our mounts from propagating back to the host.
            let none: *const libc::c_char = std::ptr::null();
            let no_data: *const libc::c_void = std::ptr::null();
            if libc::mount(
                none,
                root.as_ptr(),
                none,
                libc::MS_REC | libc::MS_SLAVE,
                no_data,
            ) != 0
            {
                return Err(err());
            }
            // No /sys mounted before is fine: the fresh one goes there all the same.
            libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
            if libc::mount(sysfs.as_ptr(), sys.as_ptr(), sysfs.as_ptr(), flags, no_data) != 0 {
                return Err(err());
            }
            if let Some((src, dst)) = &resolv {
                if libc::mount(src.as_ptr(), dst.as_ptr(), none, libc::MS_BIND, no_data) != 0 {
                    return Err(err());
                }
            }
            Ok(())
        });
    }
    Ok(())
}
