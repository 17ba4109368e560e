//! Test harness: every test builds its own world — network namespaces with unique names (tag,
//! process id, counter) and `vswitchd` running inside one of them with its own data root,
//! exec root and socket. Everything is torn down on drop, so on success and on failure (a
//! panicking test still drops its world). Every wait is bounded.

pub mod no_iproute;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer its first ping.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon restarted after a crash may take to answer (it first waits for its
/// predecessor, then restores every network and sandbox).
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one API request made by the harness.
pub const API_TIMEOUT: Duration = Duration::from_secs(20);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fail clearly when not root: these tests create namespaces.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it creates network namespaces); run the suite as root, as CI does"
    );
}

/// A unique name such as `vsw-ctl-12345-3` (at most 15 bytes are not required for netns
/// names, but interface names derived from it must stay short, so keep tags short).
pub fn unique(tag: &str) -> String {
    format!(
        "vsw-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Path of a binary built from this workspace (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// Longest any one command of a test may take: a hung daemon fails the test, not CI.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Run to completion (bounded by [`COMMAND_TIMEOUT`]: killed and the test fails after it).
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err_t = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Run and require success; returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made by the test; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        require_root();
        let name = unique(tag);
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `argv` in this namespace: nsenter enters only the network namespace (`ip netns exec`
    /// would also make a private mount namespace, hiding bind-mounted namespaces).
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .args(argv);
        c
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        run(&mut self.cmd(argv))
    }

    pub fn exec_ok(&self, argv: &[&str]) -> String {
        sh(&mut self.cmd(argv))
    }
}

/// A host namespace and an "outside" one (the internet, for NAT and published ports) joined
/// by a veth: `up0` with `host_ip`/24 in the host, `out0` with `out_ip`/24 outside.
pub fn host_and_outside(tag: &str, host_ip: &str, out_ip: &str) -> (Netns, Netns) {
    let host = Netns::new(&format!("{tag}h"));
    let outside = Netns::new(&format!("{tag}o"));
    host.link_to(
        &outside,
        "up0",
        &format!("{host_ip}/24"),
        "out0",
        &format!("{out_ip}/24"),
    );
    (host, outside)
}

impl Netns {
    /// A veth between this namespace (`my_if`, `my_cidr`) and `other` (`their_if`,
    /// `their_cidr`), both ends up. Made inside the namespaces: nothing in the root one.
    pub fn link_to(
        &self,
        other: &Netns,
        my_if: &str,
        my_cidr: &str,
        their_if: &str,
        their_cidr: &str,
    ) {
        self.exec_ok(&[
            "ip",
            "link",
            "add",
            my_if,
            "type",
            "veth",
            "peer",
            "name",
            their_if,
            "netns",
            &other.name,
        ]);
        self.exec_ok(&["ip", "addr", "add", my_cidr, "dev", my_if]);
        self.exec_ok(&["ip", "link", "set", my_if, "up"]);
        other.exec_ok(&["ip", "addr", "add", their_cidr, "dev", their_if]);
        other.exec_ok(&["ip", "link", "set", their_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A daemon killed mid-test may leave namespace bind-mounts under its exec root.
        unmount_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Detach every mount point below `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: umount2 with a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Make `cmd` start inside the named network namespace (setns in the child before exec).
pub fn in_netns(cmd: &mut Command, ns_name: &str) {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::open(format!("/run/netns/{ns_name}"))
        .unwrap_or_else(|e| panic!("open netns {ns_name}: {e}"));
    let fd = f.as_raw_fd();
    // SAFETY: only setns(2) runs between fork and exec; `f` outlives the spawn because the
    // closure owns it.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &f;
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// An HTTP response from the daemon.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// `vswitchd` running inside a test namespace, with its own directories and socket.
pub struct Daemon {
    pub ns: Netns,
    pub dir: TempDir,
    pub sock: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl Daemon {
    /// A new namespace with a daemon in it.
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, &[])
    }

    pub fn start_with(tag: &str, extra: &[&str]) -> Self {
        let ns = Netns::new(tag);
        Self::start_in(ns, extra)
    }

    pub fn start_in(ns: Netns, extra: &[&str]) -> Self {
        let dir = TempDir::new(&format!("{tag}d", tag = "vs"));
        let sock = dir.0.join("vswitchd.sock");
        let mut d = Daemon {
            ns,
            dir,
            sock,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir.0.join("exec")
    }

    /// The daemon's PATH: the system's programs without iproute2 (see [`no_iproute`]).
    pub fn daemon_path(&self) -> PathBuf {
        no_iproute::path_without_iproute(&self.dir.0.join("path"))
    }

    pub fn host_url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn spawn_child(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("vswitchd.log"))
            .expect("daemon log");
        // Enter only the network namespace (not `ip netns exec`, which also makes a private
        // mount namespace): the daemon's sandbox bind-mounts must be visible to the test.
        let mut cmd = Command::new(bin("vswitchd"));
        in_netns(&mut cmd, &self.ns.name);
        cmd.arg("-H")
            .arg(self.host_url())
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .args(&self.extra_args)
            .env("PATH", self.daemon_path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn vswitchd");
        self.child = Some(child);
    }

    fn spawn(&mut self) {
        self.spawn_child();
        self.wait_ready();
    }

    /// Wait (bounded) until the daemon answers `/_ping`.
    fn wait_ready(&mut self) {
        self.wait_ready_within(DAEMON_START_TIMEOUT);
    }

    fn wait_ready_within(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = self.try_request("GET", "/_ping", None) {
                if r.status == 200 {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("vswitchd exited early ({st}); log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd did not answer within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("vswitchd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kill with a signal and reap (bounded).
    pub fn kill(&mut self, signal: i32) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, signal) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill(libc::SIGTERM);
        self.spawn();
    }

    /// SIGKILL the daemon and start a new one at once, while the old one may still be dying
    /// (as a supervisor with a short restart delay does); the old one is reaped afterwards,
    /// then the new one is waited for (bounded).
    pub fn crash_restart(&mut self) {
        let old = self.child.take();
        if let Some(c) = &old {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        }
        self.spawn_child();
        if let Some(mut c) = old {
            let _ = c.wait();
        }
        self.wait_ready_within(RESTART_TIMEOUT);
    }

    /// Like [`Daemon::crash_restart`], but the new daemon is killed too, `after` its start
    /// (while it waits for the old one or restores), and a third one is started at once.
    pub fn crash_restart_twice(&mut self, after: Duration) {
        let old = self.child.take();
        if let Some(c) = &old {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        }
        self.spawn_child();
        if let Some(mut c) = old {
            let _ = c.wait();
        }
        std::thread::sleep(after);
        self.crash_restart();
    }

    /// Start the daemon again after [`Daemon::kill`] (same data root and socket).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "daemon still running");
        self.spawn();
    }

    /// `vswitch` CLI pointed at this daemon.
    pub fn vswitch(&self, args: &[&str]) -> Output {
        run(Command::new(bin("vswitch"))
            .arg("-H")
            .arg(self.host_url())
            .args(args))
    }

    /// `GET /metrics` on the API socket (Prometheus text), by curl as a scraper would.
    pub fn metrics_text(&self) -> String {
        let o = run(Command::new("curl").args([
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "--unix-socket",
            &self.sock.to_string_lossy(),
            "http://localhost/metrics",
        ]));
        assert!(o.status.success(), "curl /metrics: {}", stderr(&o));
        stdout(&o)
    }

    /// The unmodified docker CLI pointed at this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        run(Command::new("docker")
            .env("DOCKER_HOST", self.host_url())
            .env("DOCKER_CONFIG", self.dir.0.join("docker-config"))
            .args(args))
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<HttpResponse> {
        http(&self.sock, method, path, body)
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", self.log()))
    }
}

impl Daemon {
    /// `vswitch run -d --name NAME [args…] -- sleep infinity`: a sandbox with a process in it.
    pub fn run_sandbox(&self, name: &str, args: &[&str]) {
        let mut argv = vec!["run", "-d", "--name", name];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "sleep", "infinity"]);
        ok(self.vswitch(&argv));
    }

    /// The sandbox's namespace path (`NetworkSettings.SandboxKey`).
    pub fn sandbox_key(&self, name: &str) -> PathBuf {
        let r = self.request("GET", &format!("/containers/{name}/json"), None);
        assert_eq!(r.status, 200, "inspect {name}: {}", r.body);
        PathBuf::from(
            r.json()["NetworkSettings"]["SandboxKey"]
                .as_str()
                .expect("SandboxKey"),
        )
    }

    /// A command inside a sandbox's network namespace.
    pub fn in_sandbox_cmd(&self, name: &str, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.sandbox_key(name).display()))
            .arg("--")
            .args(argv);
        c
    }

    pub fn in_sandbox(&self, name: &str, argv: &[&str]) -> Output {
        run(&mut self.in_sandbox_cmd(name, argv))
    }

    /// Whether `target` answers one ping from the sandbox within 2 s.
    pub fn pings(&self, from: &str, target: &str) -> bool {
        self.in_sandbox(from, &["ping", "-c", "1", "-W", "2", target])
            .status
            .success()
    }

    /// `ip -j addr`/`route` inside a sandbox, parsed.
    pub fn ip_json(&self, name: &str, args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["ip", "-j"];
        argv.extend_from_slice(args);
        let out = ok(self.in_sandbox(name, &argv));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// IPv4 addresses (with prefix) of an interface inside a sandbox.
    pub fn ipv4_of(&self, name: &str, ifname: &str) -> Vec<String> {
        let v = self.ip_json(name, &["-4", "addr", "show", "dev", ifname]);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect()
    }

    /// The IPv4 default route inside a sandbox as (gateway, dev), if any.
    pub fn default_route(&self, name: &str) -> Option<(String, String)> {
        let v = self.ip_json(name, &["-4", "route", "show", "default"]);
        v.as_array().and_then(|a| a.first()).map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["dev"].as_str().unwrap_or("").to_string(),
            )
        })
    }

    /// Interface names inside a sandbox.
    pub fn links_of(&self, name: &str) -> Vec<String> {
        let v = self.ip_json(name, &["link", "show"]);
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }
}

/// Start a background process (e.g. a server) and kill it on drop.
pub struct Bg(pub Child);

impl Bg {
    pub fn spawn(mut cmd: Command) -> Bg {
        Bg(cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Sandboxes outlive their daemon by design: remove them through the API first, then
        // kill anything still running in a namespace under this daemon's exec root.
        if self.child.is_some() {
            if let Ok(r) = self.try_request("GET", "/containers/json", None) {
                let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| c["Id"].as_str().map(str::to_string))
                    .collect();
                for id in ids {
                    let _ = self.try_request("DELETE", &format!("/containers/{id}?force=1"), None);
                }
            }
        }
        self.kill(libc::SIGTERM);
        kill_processes_in(&self.exec_root().join("netns"));
    }
}

/// SIGKILL every process whose network namespace is one of the files in `dir`.
pub fn kill_processes_in(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let inodes: Vec<(u64, u64)> = rd
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if inodes.is_empty() {
        return;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if inodes.contains(&(m.dev(), m.ino())) {
                // SAFETY: kill(2).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A minimal HTTP/1.1 client over a unix socket (Connection: close), bounded by API_TIMEOUT.
pub fn http(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(API_TIMEOUT))?;
    s.set_write_timeout(Some(API_TIMEOUT))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("Content-Length: 0\r\n\r\n");
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers: head.to_string(),
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a command succeeded and return its stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Assert a command failed; returns its stderr.
pub fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded:\nstdout: {}",
        stdout(&o)
    );
    stderr(&o)
}

/// How long etcd may take to report healthy.
pub const ETCD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// etcd's client and peer ports (each test has its own namespace, so these never clash).
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// Debian's etcd (`/usr/bin/etcd`, package etcd-server) running inside a test namespace,
/// listening on `ip` (e.g. 127.0.0.1 in that namespace, or a veth address), with its own
/// data directory. Killed, and its data removed, on drop.
pub struct Etcd {
    pub ns_name: String,
    pub ip: String,
    pub dir: TempDir,
    child: Option<Child>,
    /// Member name and `--initial-cluster` (one member `n0` unless made by [`EtcdCluster`]).
    name: String,
    initial_cluster: Option<String>,
}

impl Etcd {
    /// Start etcd in `ns` and wait (bounded) until it reports healthy.
    pub fn start(ns: &Netns, ip: &str) -> Etcd {
        require_root();
        assert!(
            Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd missing: install etcd-server (scripts/setup.sh does)"
        );
        let mut e = Etcd {
            ns_name: ns.name.clone(),
            ip: ip.to_string(),
            dir: TempDir::new("etcd"),
            child: None,
            name: "n0".into(),
            initial_cluster: None,
        };
        e.spawn();
        e
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{ETCD_PEER_PORT}", self.host())
    }

    fn host(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]", self.ip)
        } else {
            self.ip.clone()
        }
    }

    /// `http://IP:2379`.
    pub fn client_url(&self) -> String {
        format!("http://{}:{ETCD_CLIENT_PORT}", self.host())
    }

    /// `etcd://IP:2379`, as `vswitchd --cluster-store` takes it.
    pub fn store_url(&self) -> String {
        format!("etcd://{}:{ETCD_CLIENT_PORT}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("etcd.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.spawn_nowait();
        self.wait_healthy();
    }

    /// Start the process without waiting (a cluster member is healthy only with a quorum).
    fn spawn_nowait(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("etcd.log"))
            .expect("etcd log");
        let client = self.client_url();
        let peer = self.peer_url();
        let initial = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let mut cmd = Command::new("/usr/bin/etcd");
        in_netns(&mut cmd, &self.ns_name);
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.dir.0.join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(initial)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn etcd"));
    }

    /// Whether `GET /health` answers `"health":"true"` (curl run inside the namespace).
    pub fn is_healthy(&self) -> bool {
        let mut cmd = Command::new("curl");
        in_netns(&mut cmd, &self.ns_name);
        cmd.args(["-s", "-m", "2", &format!("{}/health", self.client_url())]);
        let out = run(&mut cmd);
        out.status.success()
            && stdout(&out)
                .replace(' ', "")
                .contains("\"health\":\"true\"")
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + ETCD_START_TIMEOUT;
        loop {
            if self.is_healthy() {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("etcd exited early ({st}); log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy within {ETCD_START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL and reap (its data stays, for `restart`).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill (if running) and start again on the same data; waits until healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A static etcd cluster: one member per (namespace, address), each with its own data
/// directory, bootstrapped with `--initial-cluster`; every member killed and its data
/// removed on drop.
pub struct EtcdCluster {
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Start every member and wait (bounded) until each reports healthy.
    pub fn start(members: &[(&Netns, &str)]) -> EtcdCluster {
        require_root();
        assert!(
            Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd missing: install etcd-server (scripts/setup.sh does)"
        );
        let mut ms: Vec<Etcd> = members
            .iter()
            .enumerate()
            .map(|(i, (ns, ip))| Etcd {
                ns_name: ns.name.clone(),
                ip: ip.to_string(),
                dir: TempDir::new("etcd"),
                child: None,
                name: format!("m{i}"),
                initial_cluster: None,
            })
            .collect();
        let initial = ms
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut ms {
            m.initial_cluster = Some(initial.clone());
            m.spawn_nowait();
        }
        for m in &mut ms {
            m.wait_healthy();
        }
        EtcdCluster { members: ms }
    }

    /// `etcd://IP1:2379,IP2:2379,…`: every member, as `vswitchd --cluster-store` takes it.
    pub fn store_url(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:{ETCD_CLIENT_PORT}", m.host()))
            .collect();
        format!("etcd://{}", hosts.join(","))
    }

    /// The member that is the raft leader now (asked through etcd's HTTP gateway), if any
    /// member answers.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            let mut cmd = Command::new("curl");
            in_netns(&mut cmd, &m.ns_name);
            cmd.args([
                "-s",
                "-m",
                "2",
                "-X",
                "POST",
                "-d",
                "{}",
                &format!("{}/v3/maintenance/status", m.client_url()),
            ]);
            let out = run(&mut cmd);
            let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
            let me = &v["header"]["member_id"];
            !me.is_null() && *me == v["leader"]
        })
    }

    /// [`EtcdCluster::store_url`] with member `first` listed first (the one a vswitchd
    /// sends its requests to until it fails).
    pub fn store_url_first(&self, first: usize) -> String {
        let mut hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:{ETCD_CLIENT_PORT}", m.host()))
            .collect();
        if first < hosts.len() {
            let h = hosts.remove(first);
            hosts.insert(0, h);
        }
        format!("etcd://{}", hosts.join(","))
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, m.log()))
            .collect()
    }
}

/// Run `f` on a new thread that has entered the named network namespace (sockets it makes
/// live there), and return its result; a panic in `f` is re-raised here.
pub fn in_netns_thread<T: Send + 'static>(
    ns_name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use std::os::unix::io::AsRawFd;
    let path = format!("/run/netns/{ns_name}");
    let h = std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) on a valid namespace fd; it affects only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The "outside" world's servers: HTTP on 8000 answering `outside says hi` and logging each
/// client address to a file, UDP echo on 7.
const OUTSIDE_SERVERS: &str = r#"
import http.server, socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.client_address[0] + "\n")
        body = b"outside says hi\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 7))
    while True:
        d, a = s.recvfrom(2048); s.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"#;

/// Start [`OUTSIDE_SERVERS`] in `ns`, logging clients to `log` (emptied first); returns once
/// the HTTP port listens (bounded wait).
pub fn outside_servers(ns: &Netns, log: &Path) -> Bg {
    std::fs::write(log, "").expect("client log");
    let bg = Bg::spawn(ns.cmd(&[
        "python3",
        "-c",
        OUTSIDE_SERVERS,
        log.to_str().expect("utf-8 path"),
    ]));
    assert!(
        wait_until(Duration::from_secs(10), || {
            !stdout(&ns.exec(&["ss", "-ltnH", "sport = :8000"])).is_empty()
        }),
        "outside servers did not start"
    );
    bg
}
