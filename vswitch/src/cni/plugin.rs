//! The commands of `vswitch-cni`: parse, ask vswitchd, run a delegated IPAM plugin, answer.

use super::api::{Attachment, GcRequest, GcResponse};
use super::config::{Command, Env, NetConf};
use super::result::{version_json, CniResult};
use super::*;
use crate::cli::client::{Client, ClientError};
use hyper::Method;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// vswitchd's socket when the config names none.
pub const DEFAULT_SOCKET: &str = crate::cli::client::DEFAULT_HOST;
/// Bound on one request to vswitchd (an ADD waits for the daemon's other operations).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one run of a delegated IPAM plugin.
pub const DELEGATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest output read from a delegate.
pub const MAX_DELEGATE_OUTPUT: usize = 1 << 20;

/// Run one invocation: returns what goes to stdout and the exit code.
pub fn main(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> (Vec<u8>, i32) {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let answer = answer_version(&asked).to_string();
    match run(get, stdin, &asked) {
        Ok(out) => (out, 0),
        Err(e) => (e.to_json(&answer), 1),
    }
}

fn run(
    get: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
    asked: &str,
) -> Result<Vec<u8>, CniError> {
    let env = Env::from_vars(get)?;
    if env.command == Command::Version {
        return Ok(version_json(asked));
    }
    let conf = NetConf::parse(stdin, env.command)?;
    let mut d = DaemonClient::new(conf.socket.as_deref().unwrap_or(DEFAULT_SOCKET))?;
    match env.command {
        Command::Add => add(&env, &conf, stdin, &mut d),
        Command::Del => del(&env, &conf, stdin, &mut d).map(|_| Vec::new()),
        Command::Check => check(&env, &conf, stdin, &mut d).map(|_| Vec::new()),
        Command::Status => status(&env, &conf, stdin, &mut d).map(|_| Vec::new()),
        Command::Gc => gc(&env, &conf, stdin, &mut d).map(|_| Vec::new()),
        Command::Version => Ok(version_json(asked)),
    }
}

fn add(env: &Env, conf: &NetConf, stdin: &[u8], d: &mut DaemonClient) -> Result<Vec<u8>, CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .map(CniResult::from_value)
        .transpose()?;
    let delegate = conf.ipam_type().map(|t| Delegate::new(env, t));
    let mut addrs: Vec<IpAddr> = Vec::new();
    if let Some(dl) = &delegate {
        let out = dl.exec(Command::Add, stdin, &conf.cni_version)?;
        let r: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(
                CODE_IPAM,
                format!("ipam plugin {}: bad result: {e}", dl.name),
            )
        })?;
        let r = CniResult::from_value(&r)?;
        for ip in &r.ips {
            match ip.address.parse::<ipnet::IpNet>() {
                Ok(n) => addrs.push(n.addr()),
                Err(_) => {
                    let _ = dl.exec(Command::Del, stdin, &conf.cni_version);
                    return Err(CniError::new(
                        CODE_IPAM,
                        format!("ipam plugin {}: bad address {:?}", dl.name, ip.address),
                    ));
                }
            }
        }
    }
    let attached = conf.attach_request(env, &addrs).and_then(|req| {
        d.call::<_, Attachment>(Method::POST, "/vswitch/attachments", Some(&req))
            .map_err(|e| daemon_error(e, conf))
    });
    let att = match attached {
        Ok(a) => a,
        Err(e) => {
            // The delegate's allocation is freed before failing, as the spec asks.
            if let Some(dl) = &delegate {
                let _ = dl.exec(Command::Del, stdin, &conf.cni_version);
            }
            return Err(e);
        }
    };
    let r = CniResult::for_attachment(prev, &conf.cni_version, &att, &env.netns, conf.dns.as_ref());
    Ok(r.to_json())
}

fn del(env: &Env, conf: &NetConf, stdin: &[u8], d: &mut DaemonClient) -> Result<(), CniError> {
    let path = format!(
        "{}?network={}",
        attachment_path(env),
        path_escape(conf.network_name())
    );
    // A missing attachment (404) is success: DEL is idempotent.
    match d.call::<(), serde_json::Value>(Method::DELETE, &path, None) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(daemon_error(e, conf)),
    }
    if let Some(t) = conf.ipam_type() {
        Delegate::new(env, t).exec(Command::Del, stdin, &conf.cni_version)?;
    }
    Ok(())
}

fn check(env: &Env, conf: &NetConf, stdin: &[u8], d: &mut DaemonClient) -> Result<(), CniError> {
    let Some(prev) = conf.prev_result.as_ref() else {
        return Err(CniError::new(
            CODE_INVALID_CONFIG,
            "CHECK needs prevResult (the result of ADD)",
        ));
    };
    let prev = CniResult::from_value(prev)?;
    let att: Attachment = match d.call::<(), Attachment>(Method::GET, &attachment_path(env), None) {
        Ok(a) => a,
        Err(e) if e.is_not_found() => {
            return Err(CniError::new(
                CODE_CHECK_FAILED,
                format!(
                    "vswitchd has no attachment for container {} interface {}",
                    env.container_id, env.ifname
                ),
            ))
        }
        Err(e) => return Err(daemon_error(e, conf)),
    };
    let failed = |m: String| CniError::new(CODE_CHECK_FAILED, m);
    if att.network != conf.network_name() && att.network_id != conf.network_name() {
        return Err(failed(format!(
            "interface {} is on vswitch network {}, not {}",
            env.ifname,
            att.network,
            conf.network_name()
        )));
    }
    let idx = prev
        .interface_index(&env.ifname, &env.netns)
        .ok_or_else(|| {
            failed(format!(
                "prevResult has no interface {} in {}",
                env.ifname, env.netns
            ))
        })?;
    for a in [&att.ipv4, &att.ipv6].into_iter().flatten() {
        if !prev
            .ips
            .iter()
            .any(|i| i.interface == Some(idx) && &i.address == a)
        {
            return Err(failed(format!(
                "vswitchd gave {} address {a}, which prevResult does not list",
                env.ifname
            )));
        }
    }
    let view =
        inspect::read(Path::new(&env.netns)).map_err(|e| CniError::new(CODE_IO, e.to_string()))?;
    inspect::check(&view, &prev, &env.ifname, &env.netns).map_err(failed)?;
    if let Some(t) = conf.ipam_type() {
        Delegate::new(env, t).exec(Command::Check, stdin, &conf.cni_version)?;
    }
    Ok(())
}

fn status(env: &Env, conf: &NetConf, stdin: &[u8], d: &mut DaemonClient) -> Result<(), CniError> {
    if let Err(e) = d.ping() {
        return Err(CniError::new(
            CODE_NOT_READY,
            format!("vswitchd is not reachable at {}: {e}", d.host),
        ));
    }
    if let Some(t) = conf.ipam_type() {
        let dl = Delegate::new(env, t);
        // Delegates older than 1.1.0 have no STATUS.
        if dl.supports("1.1.0") {
            dl.exec(Command::Status, stdin, &conf.cni_version)?;
        }
    }
    Ok(())
}

fn gc(env: &Env, conf: &NetConf, stdin: &[u8], d: &mut DaemonClient) -> Result<(), CniError> {
    let req = GcRequest {
        network: conf.network_name().to_string(),
        valid: conf.gc_valid(),
    };
    let r: GcResponse = d
        .call(Method::POST, "/vswitch/attachments/gc", Some(&req))
        .map_err(|e| daemon_error(e, conf))?;
    for k in &r.removed {
        eprintln!(
            "vswitch-cni: GC removed attachment {} {}",
            k.container_id, k.ifname
        );
    }
    if let Some(t) = conf.ipam_type() {
        let dl = Delegate::new(env, t);
        if dl.supports("1.1.0") {
            dl.exec(Command::Gc, stdin, &conf.cni_version)?;
        }
    }
    Ok(())
}

fn attachment_path(env: &Env) -> String {
    format!(
        "/vswitch/attachments/{}/{}",
        path_escape(&env.container_id),
        path_escape(&env.ifname)
    )
}

/// Percent-encode one path segment.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A daemon failure as a spec error.
fn daemon_error(e: CallError, conf: &NetConf) -> CniError {
    match e {
        CallError::Unreachable(host, why) => CniError::new(
            CODE_TRY_AGAIN,
            format!("vswitchd is not reachable at {host}: {why}"),
        ),
        CallError::Daemon(404, m) => CniError::new(
            CODE_UNKNOWN_NETWORK,
            format!(
                "vswitch network {:?} not found: create it (vswitch network create) or give \"subnet\" in the config so that vswitch-cni creates it",
                conf.network_name()
            ),
        )
        .with_details(m),
        CallError::Daemon(_, m) => CniError::new(CODE_DAEMON, m),
        CallError::Io(m) => CniError::new(CODE_IO, m),
    }
}

#[derive(Debug)]
enum CallError {
    Unreachable(String, String),
    Daemon(u16, String),
    Io(String),
}

impl CallError {
    fn is_not_found(&self) -> bool {
        matches!(self, CallError::Daemon(404, _))
    }
}

struct DaemonClient {
    host: String,
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl DaemonClient {
    fn new(socket: &str) -> Result<Self, CniError> {
        let mut client = Client::new(socket)
            .map_err(|e| CniError::new(CODE_INVALID_CONFIG, format!("socket: {e}")))?;
        client.set_api_version(crate::api::API_VERSION);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::new(CODE_IO, format!("tokio runtime: {e}")))?;
        Ok(DaemonClient {
            host: client.host().to_string(),
            client,
            rt,
        })
    }

    fn ping(&mut self) -> Result<(), String> {
        let fut = self.client.ping();
        match self
            .rt
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, fut).await })
        {
            Ok(Ok((s, _))) if s.is_success() => Ok(()),
            Ok(Ok((s, _))) => Err(format!("ping answered {s}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }

    fn call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let body = match body {
            Some(b) => {
                let mut v = serde_json::to_vec(b).map_err(|e| CallError::Io(e.to_string()))?;
                v.push(b'\n');
                Some(v)
            }
            None => None,
        };
        let host = self.host.clone();
        let fut = self.client.request(method, path, body);
        let resp = match self
            .rt
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, fut).await })
        {
            Err(_) => {
                return Err(CallError::Io(format!(
                    "vswitchd did not answer within {REQUEST_TIMEOUT:?}"
                )))
            }
            Ok(Ok(r)) => r,
            Ok(Err(e)) if e.is_connection_error() => {
                return Err(CallError::Unreachable(host, e.to_string()))
            }
            Ok(Err(ClientError::Daemon { status, message })) => {
                let m = message
                    .strip_prefix("Error response from daemon: ")
                    .unwrap_or(&message)
                    .to_string();
                return Err(CallError::Daemon(status, m));
            }
            Ok(Err(e)) => return Err(CallError::Io(e.to_string())),
        };
        let body: &[u8] = if resp.body.is_empty() {
            b"null"
        } else {
            &resp.body
        };
        serde_json::from_slice(body)
            .map_err(|e| CallError::Io(format!("vswitchd answered {path} with bad JSON: {e}")))
    }
}

/// A delegated IPAM plugin, found on `CNI_PATH`.
struct Delegate<'a> {
    env: &'a Env,
    name: String,
}

impl<'a> Delegate<'a> {
    fn new(env: &'a Env, name: &str) -> Self {
        Delegate {
            env,
            name: name.to_string(),
        }
    }

    fn binary(&self) -> Result<PathBuf, CniError> {
        self.env
            .path
            .iter()
            .map(|d| d.join(&self.name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CniError::new(
                    CODE_IPAM,
                    format!(
                        "ipam plugin {:?} not found in CNI_PATH ({})",
                        self.name,
                        self.env
                            .path
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    ),
                )
            })
    }

    /// The delegate's VERSION answer lists `v` (false when it cannot say).
    fn supports(&self, v: &str) -> bool {
        self.versions().is_ok_and(|vs| vs.iter().any(|x| x == v))
    }

    fn versions(&self) -> Result<Vec<String>, CniError> {
        let out = self.spawn(Command::Version, br#"{"cniVersion":"1.0.0"}"#)?;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        Ok(v.get("supportedVersions")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run a command with the whole config; when the delegate does not speak the config's
    /// version, the highest version both speak is put in the copy it gets.
    fn exec(&self, cmd: Command, config: &[u8], version: &str) -> Result<Vec<u8>, CniError> {
        let theirs = self.versions()?;
        let mut conf = config.to_vec();
        if !theirs.iter().any(|v| v == version) {
            let common = SUPPORTED_VERSIONS
                .iter()
                .rev()
                .find(|v| theirs.iter().any(|t| t == *v))
                .ok_or_else(|| {
                    CniError::new(
                        CODE_INCOMPATIBLE_VERSION,
                        format!(
                            "ipam plugin {} supports none of {} (it has {})",
                            self.name,
                            SUPPORTED_VERSIONS.join(", "),
                            theirs.join(", ")
                        ),
                    )
                })?;
            let mut v: serde_json::Value = serde_json::from_slice(config)
                .map_err(|e| CniError::new(CODE_DECODE, e.to_string()))?;
            v["cniVersion"] = serde_json::json!(common);
            conf = serde_json::to_vec(&v).unwrap_or_default();
        }
        self.spawn(cmd, &conf)
    }

    fn spawn(&self, cmd: Command, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
        let bin = self.binary()?;
        let fail = |m: String| CniError::new(CODE_IPAM, format!("ipam plugin {}: {m}", self.name));
        let mut child = std::process::Command::new(&bin)
            .env("CNI_COMMAND", cmd.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", bin.display())))?;
        let input = stdin.to_vec();
        let mut pipe = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(p) = pipe.as_mut() {
                let _ = p.write_all(&input);
            }
        });
        let mut out_pipe = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.take(MAX_DELEGATE_OUTPUT as u64).read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + DELEGATE_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!("no answer within {DELEGATE_TIMEOUT:?}")));
                }
            }
        };
        let _ = writer.join();
        let out = reader.join().unwrap_or_default();
        if status.success() {
            return Ok(out);
        }
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        let msg = v
            .get("msg")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&out).trim().to_string());
        let mut e = fail(format!("{} failed: {msg}", cmd.as_str()));
        if let Some(d) = v.get("details").and_then(|d| d.as_str()) {
            e = e.with_details(d);
        }
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_path_segments() {
        assert_eq!(path_escape("abc-1.2_x"), "abc-1.2_x");
        assert_eq!(path_escape("a%b?c"), "a%25b%3Fc");
    }

    #[test]
    fn version_and_bad_env_need_no_daemon() {
        let (out, code) = main(
            |k| (k == "CNI_COMMAND").then(|| "VERSION".into()),
            b"{\"cniVersion\":\"1.0.0\"}",
        );
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        let (out, code) = main(|_| None, b"{}");
        assert_eq!(code, 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["code"], CODE_INVALID_ENV);
    }
}
