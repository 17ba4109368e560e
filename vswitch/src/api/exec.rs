//! `docker exec` for sandboxes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` and
//! `GET /exec/{id}/json`, so SDK code that execs in a container works. The command runs in the
//! sandbox's network namespace with its resolv.conf, as `vswitch exec` runs it. Attached output
//! goes out in Docker's multiplexed stream format (8-byte frame headers) over the upgraded
//! connection, or in the response body when the client did not ask for an upgrade.
//!
//! The record keeping ([`ExecTable`]) is apart from the process I/O so it can be tested alone.

use super::json::{ExecCreateJson, ExecStartJson};
use super::{ok_json, Resp};
use crate::daemon::Daemon;
use crate::model::Error;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Exec records kept; past this the oldest finished ones are forgotten (Docker forgets them
/// when the container goes; a sandbox may live for long).
pub const MAX_EXECS: usize = 1024;
/// Output kept for a start that is not upgraded (answered as one body); the rest is dropped.
pub const MAX_BUFFERED_OUTPUT: usize = 16 << 20;
/// Pause between sending the 101 of an upgraded start and starting the command (see there).
pub const UPGRADE_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);
/// Read size from the command's pipes.
const PIPE_CHUNK: usize = 32 << 10;
/// Exit codes Docker reports when the command cannot be started.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// Stream ids of the multiplexed format.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One stream frame: `[stream, 0, 0, 0, len (u32 big endian)]` then the payload.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let l = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecState {
    Created,
    Running { pid: u32 },
    Exited { pid: u32, code: i32 },
}

#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub netns: PathBuf,
    pub resolv: Option<PathBuf>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub state: ExecState,
}

impl Exec {
    /// `GET /exec/{id}/json` (moby's backend.ExecInspect, in its field order).
    pub fn inspect_json(&self) -> serde_json::Value {
        let (running, code, pid) = match self.state {
            ExecState::Created => (false, None, 0),
            ExecState::Running { pid } => (true, None, pid),
            ExecState::Exited { pid, code } => (false, Some(code), pid),
        };
        let mut pc = serde_json::json!({
            "tty": self.tty,
            "entrypoint": self.cmd.first().cloned().unwrap_or_default(),
            "arguments": self.cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": self.privileged,
        });
        if !self.user.is_empty() {
            pc["user"] = serde_json::json!(self.user);
        }
        serde_json::json!({
            "ID": self.id,
            "Running": running,
            "ExitCode": code,
            "ProcessConfig": pc,
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container_id,
            "DetachKeys": "",
            "Pid": pid,
        })
    }
}

/// Every exec instance of the daemon, by id.
#[derive(Default)]
pub struct ExecTable {
    map: HashMap<String, Exec>,
    order: VecDeque<String>,
}

impl ExecTable {
    pub fn insert(&mut self, e: Exec) {
        while self.map.len() >= MAX_EXECS {
            // Forget the oldest finished (or never started) one; running ones stay.
            let pos = self.order.iter().position(|id| {
                self.map
                    .get(id)
                    .is_none_or(|e| !matches!(e.state, ExecState::Running { .. }))
            });
            match pos.and_then(|p| self.order.remove(p)) {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(e.id.clone());
        self.map.insert(e.id.clone(), e);
    }

    pub fn get(&self, id: &str) -> Result<&Exec, Error> {
        self.map
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    /// Created → Running (pid set once spawned); Docker's 409s for a second start.
    pub fn begin(&mut self, id: &str) -> Result<Exec, Error> {
        let e = self
            .map
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))?;
        match e.state {
            ExecState::Created => {
                e.state = ExecState::Running { pid: 0 };
                Ok(e.clone())
            }
            ExecState::Running { .. } => Err(Error::Conflict(format!(
                "Error: Exec command {id} is already running"
            ))),
            ExecState::Exited { .. } => Err(Error::Conflict(format!(
                "Error: Exec command {id} has already run"
            ))),
        }
    }

    pub fn set_pid(&mut self, id: &str, pid: u32) {
        if let Some(e) = self.map.get_mut(id) {
            e.state = ExecState::Running { pid };
        }
    }

    pub fn finish(&mut self, id: &str, code: i32) {
        if let Some(e) = self.map.get_mut(id) {
            let pid = match e.state {
                ExecState::Running { pid } | ExecState::Exited { pid, .. } => pid,
                ExecState::Created => 0,
            };
            e.state = ExecState::Exited { pid, code };
        }
    }
}

/// The daemon's exec table (shared with the tasks that wait for the commands).
#[derive(Default, Clone)]
pub struct Execs(Arc<Mutex<ExecTable>>);

impl Execs {
    fn lock(&self) -> std::sync::MutexGuard<'_, ExecTable> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `POST /containers/{id}/exec`.
pub fn create(d: &Daemon, container: &str, req: ExecCreateJson) -> Result<Resp, Error> {
    let (id, ns) = {
        let st = d.state();
        let sb = st.find_sandbox(container)?;
        (sb.id.clone(), sb.netns.clone())
    };
    let Some(ns) = ns else {
        return Err(Error::Conflict(format!("container {id} is not running")));
    };
    if req.cmd.is_empty() {
        return Err(Error::InvalidParameter("No exec command specified".into()));
    }
    let resolv = crate::daemon::resolv_conf_path(&d.config.exec_root, &id);
    let exec = Exec {
        id: crate::util::new_id(),
        container_id: id,
        netns: PathBuf::from(ns),
        resolv: resolv.exists().then_some(resolv),
        cmd: req.cmd,
        env: req.env,
        working_dir: req.working_dir,
        user: req.user,
        privileged: req.privileged,
        tty: req.tty,
        attach_stdin: req.attach_stdin,
        attach_stdout: req.attach_stdout,
        attach_stderr: req.attach_stderr,
        state: ExecState::Created,
    };
    let exec_id = exec.id.clone();
    d.execs.lock().insert(exec);
    Ok(ok_json(201, &serde_json::json!({ "Id": exec_id })))
}

/// `GET /exec/{id}/json`.
pub fn inspect(d: &Daemon, id: &str) -> Result<Resp, Error> {
    let v = d.execs.lock().get(id)?.inspect_json();
    Ok(ok_json(200, &v))
}

/// `POST /exec/{id}/start`. `upgrade` is the connection to hijack when the client asked for
/// one (`Connection: Upgrade`, as the Docker SDKs do).
pub async fn start(
    d: &Daemon,
    id: &str,
    req: ExecStartJson,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Resp, Error> {
    let execs = d.execs.clone();
    let e = execs.lock().begin(id)?;
    let tty = e.tty || req.tty;
    let id = id.to_string();
    let content_type = if tty { RAW_STREAM } else { MULTIPLEXED };
    let streams = Streams {
        tty,
        stdout: e.attach_stdout,
        stderr: e.attach_stderr,
    };
    let start = move |execs: &Execs| {
        let spawned = spawn(&e);
        if let Ok(child) = &spawned {
            execs.lock().set_pid(&e.id, child.id().unwrap_or(0));
        }
        spawned
    };
    if req.detach {
        let spawned = start(&execs);
        tokio::spawn(async move {
            let code = run(spawned, &mut tokio::io::sink(), streams, usize::MAX).await;
            execs.lock().finish(&id, code);
        });
        return Ok(empty(200, None));
    }
    match upgrade {
        Some(on) => {
            tokio::spawn(async move {
                let upgraded = on.await;
                // The command starts once the 101 is out (as in Docker), and a moment later:
                // clients that read the 101 through a buffered reader (docker-py) lose output
                // arriving in the same read.
                tokio::time::sleep(UPGRADE_SETTLE).await;
                let spawned = start(&execs);
                match upgraded {
                    Ok(io) => {
                        let mut io = hyper_util::rt::TokioIo::new(io);
                        let code = run(spawned, &mut io, streams, usize::MAX).await;
                        // Record the exit code before the client sees EOF: SDKs inspect the
                        // exec right after the stream ends.
                        execs.lock().finish(&id, code);
                        let _ = io.shutdown().await;
                    }
                    Err(err) => {
                        tracing::debug!("exec {id}: upgrade failed: {err}");
                        let code = run(spawned, &mut tokio::io::sink(), streams, usize::MAX).await;
                        execs.lock().finish(&id, code);
                    }
                }
            });
            let mut r = empty(101, Some(content_type));
            let h = r.headers_mut();
            h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(UPGRADE, HeaderValue::from_static("tcp"));
            Ok(r)
        }
        None => {
            let spawned = start(&execs);
            let mut out = Vec::new();
            let code = run(spawned, &mut out, streams, MAX_BUFFERED_OUTPUT).await;
            execs.lock().finish(&id, code);
            let mut r = empty(200, Some(content_type));
            *r.body_mut() = Full::new(Bytes::from(out));
            Ok(r)
        }
    }
}

fn empty(status: u16, content_type: Option<&'static str>) -> Resp {
    let mut r = Resp::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

/// Which streams the client reads, and whether they are raw (TTY) or framed.
#[derive(Clone, Copy)]
struct Streams {
    tty: bool,
    stdout: bool,
    stderr: bool,
}

/// Start the command inside the sandbox's namespace (and its resolv.conf), stdin closed.
fn spawn(e: &Exec) -> std::io::Result<tokio::process::Child> {
    use std::process::Stdio;
    let mut cmd = std::process::Command::new(&e.cmd[0]);
    cmd.args(&e.cmd[1..]);
    for kv in &e.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if !e.working_dir.is_empty() {
        cmd.current_dir(&e.working_dir);
    }
    if !e.user.is_empty() {
        use std::os::unix::process::CommandExt;
        let (uid, gid) = resolve_user(&e.user)?;
        cmd.uid(uid);
        if let Some(g) = gid {
            cmd.gid(g);
        }
    }
    crate::netns::command_in(&mut cmd, &e.netns).map_err(std::io::Error::other)?;
    crate::sandbox::with_sandbox_mounts(&mut cmd, e.resolv.as_deref())
        .map_err(std::io::Error::other)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    cmd.spawn()
}

/// `uid[:gid]` numeric or by name from /etc/passwd and /etc/group, as Docker's `--user`.
fn resolve_user(spec: &str) -> std::io::Result<(u32, Option<u32>)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, what: &str| -> std::io::Result<(u32, Option<u32>)> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok((n, None));
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
            .and_then(|f| {
                let id = f.get(2)?.parse().ok()?;
                Some((id, f.get(3).and_then(|g| g.parse().ok())))
            })
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "unable to find {what} {name}: no matching entries in {} file",
                    if what == "user" { "passwd" } else { "group" }
                ))
            })
    };
    let (uid, primary) = lookup("/etc/passwd", user, "user")?;
    let gid = match group {
        Some(g) => Some(lookup("/etc/group", g, "group")?.0),
        None => primary,
    };
    Ok((uid, gid))
}

/// Writes output to the client: framed or raw, only attached streams, up to a limit; stops
/// writing (but not reading) once the client is gone.
struct Emitter {
    s: Streams,
    limit: usize,
    written: usize,
    client_ok: bool,
}

impl Emitter {
    async fn emit<W: AsyncWrite + Unpin>(&mut self, w: &mut W, stream: u8, data: &[u8]) {
        let attached = if stream == STDOUT {
            self.s.stdout
        } else {
            self.s.stderr
        };
        let size = data.len() + if self.s.tty { 0 } else { 8 };
        if !attached || !self.client_ok || self.written.saturating_add(size) > self.limit {
            return;
        }
        let mut res = Ok(());
        if !self.s.tty {
            res = w.write_all(&frame_header(stream, data.len())).await;
        }
        if res.is_ok() {
            res = w.write_all(data).await;
        }
        if res.is_ok() {
            res = w.flush().await;
        }
        self.written += size;
        self.client_ok = res.is_ok();
    }
}

async fn read_opt<R: AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Copy the command's output to `w` until both pipes close, then reap it; returns the exit
/// code Docker would report. A client that goes away does not stop the command: its output
/// is drained and dropped. At most `limit` bytes are written.
async fn run<W: AsyncWrite + Unpin>(
    spawned: std::io::Result<tokio::process::Child>,
    w: &mut W,
    s: Streams,
    limit: usize,
) -> i32 {
    let mut em = Emitter {
        s,
        limit,
        written: 0,
        client_ok: true,
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_EXECUTE
            };
            let msg = format!("exec failed: unable to start process: {e}\n");
            em.emit(w, STDERR, msg.as_bytes()).await;
            return code;
        }
    };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut b1 = vec![0u8; PIPE_CHUNK];
    let mut b2 = vec![0u8; PIPE_CHUNK];
    while out.is_some() || err.is_some() {
        tokio::select! {
            r = read_opt(&mut out, &mut b1) => match r {
                Ok(n) if n > 0 => em.emit(w, STDOUT, &b1[..n]).await,
                _ => out = None,
            },
            r = read_opt(&mut err, &mut b2) => match r {
                Ok(n) if n > 0 => em.emit(w, STDERR, &b2[..n]).await,
                _ => err = None,
            },
        }
    }
    match child.wait().await {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
        }
        Err(_) => EXIT_CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Exec {
        Exec {
            id: id.into(),
            container_id: "c".repeat(64),
            netns: PathBuf::from("/nonexistent"),
            resolv: None,
            cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec![],
            working_dir: String::new(),
            user: String::new(),
            privileged: false,
            tty: false,
            attach_stdin: false,
            attach_stdout: true,
            attach_stderr: true,
            state: ExecState::Created,
        }
    }

    #[test]
    fn frame_headers_are_dockers() {
        assert_eq!(frame_header(STDOUT, 3), [1, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(frame_header(STDERR, 0x0102_0304), [2, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn lifecycle_and_docker_errors() {
        let mut t = ExecTable::default();
        t.insert(exec("a"));
        let v = t.get("a").unwrap().inspect_json();
        assert_eq!(v["Running"], false);
        assert_eq!(v["ExitCode"], serde_json::Value::Null);
        assert_eq!(v["Pid"], 0);
        assert_eq!(
            v["ProcessConfig"],
            serde_json::json!({"tty":false,"entrypoint":"sh","arguments":["-c","echo hi"],"privileged":false})
        );
        t.begin("a").unwrap();
        t.set_pid("a", 42);
        assert_eq!(
            t.begin("a").unwrap_err().to_string(),
            "Error: Exec command a is already running"
        );
        let v = t.get("a").unwrap().inspect_json();
        assert_eq!(
            (v["Running"].clone(), v["Pid"].clone()),
            (true.into(), 42.into())
        );
        t.finish("a", 3);
        let v = t.get("a").unwrap().inspect_json();
        assert_eq!(v["ExitCode"], 3);
        assert_eq!(v["Pid"], 42);
        let e = t.begin("a").unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (409, "Error: Exec command a has already run".into())
        );
        let e = t.get("zz").unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (404, "No such exec instance: zz".into())
        );
    }

    #[test]
    fn table_is_bounded_and_keeps_running_ones() {
        let mut t = ExecTable::default();
        t.insert(exec("run"));
        t.begin("run").unwrap();
        for i in 0..MAX_EXECS + 10 {
            t.insert(exec(&format!("e{i}")));
        }
        assert!(t.map.len() <= MAX_EXECS);
        assert!(t.get("run").is_ok());
        assert!(t.get("e0").is_err());
        assert!(t.get(&format!("e{}", MAX_EXECS + 9)).is_ok());
    }

    #[test]
    fn users() {
        assert_eq!(resolve_user("0").unwrap(), (0, None));
        assert_eq!(resolve_user("1000:1001").unwrap(), (1000, Some(1001)));
        assert_eq!(resolve_user("root").unwrap().0, 0);
        assert_eq!(
            resolve_user("no-such-user-x").unwrap_err().to_string(),
            "unable to find user no-such-user-x: no matching entries in passwd file"
        );
    }
}
