//! Sandbox plumbing: a port's TAP created directly inside the sandbox's namespace as `ethN`
//! (no move, no rename), its address, MTU and routes; the default route (handover); the
//! processes run inside; the host-side interface of a bridge network.

use crate::netlink::{self, LinkChange, Netlink, NetlinkError};
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
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
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
    /// `LinkLocalIPs`, after the addresses above.
    pub link_local: Vec<IpNet>,
    pub mtu: u32,
}

/// Create the TAP inside the namespace and configure it. The returned fds keep it alive:
/// closing them deletes the interface.
pub fn create_port(ns: &Path, spec: &PortSpec, queues: usize) -> Result<Tap, SandboxError> {
    let s = spec.clone();
    let tap = netns::run_in(ns, move || -> Result<Tap, SandboxError> {
        let mac = netlink::parse_mac(&s.mac)?;
        clear_stale_link(&mut Netlink::open()?, &s.ifname, Some(mac))?;
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
    // A stale pair of this host name goes first (its peer with it); then whatever else of
    // ours still holds the name inside (a predecessor's TAP).
    veth::delete(host);
    let (name, mac) = (spec.ifname.clone(), netlink::parse_mac(&spec.mac)?);
    netns::run_in(ns, move || -> Result<(), SandboxError> {
        clear_stale_link(&mut Netlink::open()?, &name, Some(mac))
    })??;
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
            queues: Vec::new(),
        }),
        Err(e) => {
            veth::delete(host);
            Err(e)
        }
    }
}

/// Bring the link to the spec whatever it holds now (convergent: a restart, or a predecessor
/// daemon still dying, may have configured it already): MAC and MTU set, the spec's addresses
/// present, any other address removed (IPv6 link-local excepted: the kernel's own), up. Run
/// on a thread already inside the target namespace.
fn configure_link(s: &PortSpec) -> Result<(), SandboxError> {
    let mac = netlink::parse_mac(&s.mac)?;
    let mut nl = Netlink::open()?;
    nl.set_link(
        &s.ifname,
        &LinkChange {
            mac: Some(mac),
            mtu: Some(s.mtu),
            ..LinkChange::default()
        },
    )?;
    // IPv6 first, then IPv4, as before.
    let want: Vec<IpNet> = [s.ipv6, s.ipv4]
        .into_iter()
        .flatten()
        .chain(s.link_local.iter().copied())
        .collect();
    for a in nl.addresses(&s.ifname)? {
        if !a.is_link_local_v6() && !want.contains(&a.net) {
            nl.del_address(&s.ifname, a.net)?;
        }
    }
    for a in want {
        match nl.add_address(&s.ifname, a) {
            // The kernel's EINVAL says nothing about why; this is the usual reason.
            Err(e) if e.errno() == Some(libc::EINVAL) && a.addr().is_ipv6() && s.mtu < 1280 => {
                return Err(SandboxError::Other(format!(
                    "{e}: IPv6 needs an MTU of at least 1280 (this network's is {})",
                    s.mtu
                )))
            }
            r => r?,
        }
    }
    nl.set_up(&s.ifname, true)?;
    Ok(())
}

/// The interface inside a namespace that has this MAC (`02:42:…`), if any: how CNI CHECK and
/// restore find an endpoint whose interface was renamed.
pub fn find_link_by_mac(ns: &Path, mac: &str) -> Result<Option<netlink::Link>, SandboxError> {
    let mac = netlink::parse_mac(mac)?;
    netns::run_in(ns, move || -> Result<_, SandboxError> {
        Ok(Netlink::open()?.link_by_mac(mac)?)
    })?
}

/// How long [`clear_stale_link`] waits for a leftover interface (a predecessor daemon's TAP
/// whose fds are still closing) to go away by itself before deleting it.
pub const STALE_LINK_WAIT: Duration = Duration::from_secs(2);
/// Poll interval of that wait.
const STALE_LINK_POLL: Duration = Duration::from_millis(20);

/// Make sure no interface called `name` exists in the calling thread's namespace: a leftover
/// one (a persistent TAP, or a predecessor's not yet deleted) is waited for, bounded by
/// [`STALE_LINK_WAIT`], then deleted. Without this a new TAP of that name would fail to create
/// or, worse, attach as an extra queue of the old device. With `ours` (a sandbox, which a
/// runtime may have handed over with interfaces of its own), only an interface with the
/// endpoint's own MAC (vswitchd's by construction) is deleted; any other that does not go away
/// is an error, never deleted.
fn clear_stale_link(
    nl: &mut Netlink,
    name: &str,
    ours: Option<[u8; 6]>,
) -> Result<(), SandboxError> {
    let deadline = Instant::now() + STALE_LINK_WAIT;
    while let Some(l) = nl.link(name)? {
        if Instant::now() >= deadline {
            if ours.is_some_and(|m| l.mac != Some(m)) {
                return Err(SandboxError::Other(format!(
                    "interface {name} already exists (kind {}, MAC {}) and is not vswitchd's",
                    l.kind.as_deref().unwrap_or("device"),
                    l.mac.map(|m| netlink::format_mac(&m)).unwrap_or_default()
                )));
            }
            tracing::info!("interface {name} left over from before: deleting it");
            nl.delete_link(name)?;
            break;
        }
        std::thread::sleep(STALE_LINK_POLL);
    }
    Ok(())
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
        let mut nl = Netlink::open()?;
        for (v6, r) in [(false, &w.v4), (true, &w.v6)] {
            match r {
                Some((gw, dev)) => nl.replace_default_route(*gw, dev)?,
                None => nl.del_default_routes(v6)?,
            }
        }
        Ok(())
    })?
}

/// The namespace's default routes as they are (gateway and device per family): what CNI
/// CHECK and restore compare with [`DefaultRoute`]. A route without a gateway or whose device
/// has no name is left out.
pub fn read_default_route(ns: &Path) -> Result<DefaultRoute, SandboxError> {
    netns::run_in(ns, move || -> Result<DefaultRoute, SandboxError> {
        let mut nl = Netlink::open()?;
        let links = nl.links()?;
        let mut out = DefaultRoute::default();
        for v6 in [false, true] {
            let found = nl.default_routes(v6)?.into_iter().find_map(|r| {
                let dev = links.iter().find(|l| Some(l.index) == r.oif)?;
                Some((r.gateway?, dev.name.clone()))
            });
            if v6 {
                out.v6 = found;
            } else {
                out.v4 = found;
            }
        }
        Ok(out)
    })?
}

/// A link inside a namespace as it is: MAC, MTU, up, and its addresses (`None` when there is
/// no such interface). For CNI CHECK and restore.
pub fn read_link(
    ns: &Path,
    ifname: &str,
) -> Result<Option<(netlink::Link, Vec<IpNet>)>, SandboxError> {
    let name = ifname.to_string();
    netns::run_in(ns, move || -> Result<_, SandboxError> {
        let mut nl = Netlink::open()?;
        let Some(link) = nl.link(&name)? else {
            return Ok(None);
        };
        let addrs = nl.addresses(&name)?.into_iter().map(|a| a.net).collect();
        Ok(Some((link, addrs)))
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
    clear_stale_link(&mut Netlink::open()?, &spec.ifname, None)?;
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

#[cfg(test)]
mod tests;
