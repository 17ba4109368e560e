//! Sandbox ("container") commands: `run`, `exec`, `ps`, `rm`.
//!
//! `run -d` asks the daemon to start the command inside the sandbox (it outlives the CLI);
//! `run` without `-d` and `exec` run the command from this process after entering the
//! sandbox's network namespace (so they need the same privileges as the daemon).

use super::client::Client;
use super::{CliError, Io};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Keep the command running in the background; print the sandbox id
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Remove the sandbox when the command exits (not with -d)
    #[arg(long = "rm")]
    pub rm: bool,
    /// Sandbox name
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Network to attach to (default: bridge)
    #[arg(long = "net", visible_alias = "network", default_value = "bridge")]
    pub net: String,
    /// IPv4 address on that network
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// IPv6 address on that network
    #[arg(long = "ip6")]
    pub ip6: Option<String>,
    /// Network-scoped alias
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub aliases: Vec<String>,
    /// Link to another sandbox (name:alias)
    #[arg(long = "link")]
    pub links: Vec<String>,
    /// Publish a port: [hostip:][hostport:]containerport[/proto] (ranges allowed)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Expose a port or a range (published with -P)
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Publish every exposed port to an ephemeral host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Use an existing network namespace (/proc/PID/ns/net or an `ip netns` name)
    #[arg(long = "netns")]
    pub netns: Option<String>,
    /// Command to run inside
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Sandbox name or id
    pub sandbox: String,
    /// Command to run inside
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Only display ids
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Show full ids
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// Stop what runs inside first
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Sandbox names or ids
    #[arg(required = true)]
    pub sandboxes: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PortArgs {
    /// Sandbox name or id
    pub sandbox: String,
    /// Only this port (PORT[/PROTO])
    pub port: Option<String>,
}

/// The Docker `ExposedPorts` and `HostConfig.PortBindings` of `run`'s -p/--expose flags.
fn port_fields(a: &RunArgs) -> Result<(Value, Value), CliError> {
    use crate::ports;
    let mut exposed = serde_json::Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in &a.expose {
        for (p, proto) in ports::parse_expose(e).map_err(|e| CliError::msg(e.to_string()))? {
            exposed.insert(ports::key(p, proto), json!({}));
        }
    }
    for spec in &a.publish {
        for r in ports::parse_publish(spec).map_err(|e| CliError::msg(e.to_string()))? {
            let k = ports::key(r.container_port, r.proto);
            exposed.insert(k.clone(), json!({}));
            let host_port = match r.host_ports {
                None => String::new(),
                Some((x, y)) if x == y => x.to_string(),
                Some((x, y)) => format!("{x}-{y}"),
            };
            bindings.entry(k).or_default().push(json!({
                "HostIp": r.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "HostPort": host_port,
            }));
        }
    }
    Ok((Value::Object(exposed), json!(bindings)))
}

/// The `POST /containers/create` body for `run`.
pub fn create_body(a: &RunArgs) -> Value {
    let mut ipam = serde_json::Map::new();
    if let Some(ip) = &a.ip {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = &a.ip6 {
        ipam.insert("IPv6Address".into(), json!(ip));
    }
    let mut eps = BTreeMap::new();
    eps.insert(
        a.net.clone(),
        json!({ "IPAMConfig": ipam, "Aliases": a.aliases, "Links": a.links }),
    );
    let (exposed, bindings) = port_fields(a).unwrap_or((json!({}), json!({})));
    let mut body = json!({
        "Cmd": if a.detach { a.cmd.clone() } else { Vec::new() },
        "ExposedPorts": exposed,
        "HostConfig": {
            "NetworkMode": a.net,
            "PortBindings": bindings,
            "PublishAllPorts": a.publish_all,
        },
        "NetworkingConfig": { "EndpointsConfig": eps },
    });
    if let Some(ns) = &a.netns {
        body["SandboxKey"] = json!(ns);
    }
    body
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(client: &mut Client, a: RunArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    if a.detach && a.rm {
        return Err(CliError::msg(
            "conflicting options: cannot specify both --rm and -d",
        ));
    }
    if !a.detach && a.cmd.is_empty() {
        return Err(CliError::msg("run needs a command after `--` (or -d)"));
    }
    // Bad -p/--expose values are the user's to fix before anything is created.
    port_fields(&a)?;
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", query_escape(n)),
        None => "/containers/create".to_string(),
    };
    let r = client.post_serialize(&path, &create_body(&a)).await?;
    let id = r
        .json()
        .map_err(CliError::msg)?
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if a.detach {
        client
            .post_empty(&format!("/containers/{id}/start"))
            .await?;
        io.print(&format!("{id}\n"));
        return Ok(());
    }
    let (key, resolv) = sandbox_paths(client, &id).await?;
    let status = exec_in(&key, &a.cmd, resolv.as_deref());
    if a.rm {
        client.delete(&format!("/containers/{id}?force=1")).await?;
    }
    status
}

/// The sandbox's namespace path and its resolv.conf (if it has one).
async fn sandbox_paths(
    client: &mut Client,
    name: &str,
) -> Result<(String, Option<String>), CliError> {
    let r = client
        .get(&format!("/containers/{}/json", query_escape(name)))
        .await?;
    let v = r.json().map_err(CliError::msg)?;
    let key = v["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if key.is_empty() {
        return Err(CliError::msg(format!(
            "sandbox {name} has no network namespace"
        )));
    }
    let resolv = v["ResolvConfPath"].as_str().map(str::to_string);
    Ok((key, resolv))
}

/// Run `cmd` in the namespace at `key` with this process's stdio; its exit code becomes ours.
fn exec_in(key: &str, cmd: &[String], resolv: Option<&str>) -> Result<(), CliError> {
    let resolv = resolv.map(std::path::Path::new);
    match crate::sandbox::exec_in(std::path::Path::new(key), cmd, resolv) {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(CliError {
            code: st.code().unwrap_or(128 + st.signal_number()),
            message: None,
        }),
        Err(e) => Err(CliError::status(126, e.to_string())),
    }
}

trait SignalNumber {
    fn signal_number(&self) -> i32;
}

impl SignalNumber for std::process::ExitStatus {
    fn signal_number(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.signal().unwrap_or(0)
    }
}

pub async fn exec(client: &mut Client, a: ExecArgs, _io: &mut Io<'_>) -> Result<(), CliError> {
    let (key, resolv) = sandbox_paths(client, &a.sandbox).await?;
    exec_in(&key, &a.cmd, resolv.as_deref())
}

/// `vswitch port NAME [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:32768` lines, as `docker port`.
pub async fn port(client: &mut Client, a: PortArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let r = client
        .get(&format!("/containers/{}/json", query_escape(&a.sandbox)))
        .await?;
    let v = r.json().map_err(CliError::msg)?;
    let want = match &a.port {
        None => None,
        Some(p) => Some(crate::ports::parse_key(p).map_err(|e| CliError::msg(e.to_string()))?),
    };
    let mut lines = Vec::new();
    if let Some(m) = v["NetworkSettings"]["Ports"].as_object() {
        for (k, list) in m {
            let Ok((cp, proto)) = crate::ports::parse_key(k) else {
                continue;
            };
            if want.is_some_and(|w| w != (cp, proto)) {
                continue;
            }
            for b in list.as_array().into_iter().flatten() {
                let ip = b["HostIp"].as_str().unwrap_or("");
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                let line = if want.is_some() {
                    format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""))
                } else {
                    format!("{k} -> {ip}:{}", b["HostPort"].as_str().unwrap_or(""))
                };
                lines.push(line);
            }
        }
    }
    if let (Some((p, proto)), true) = (want, lines.is_empty()) {
        return Err(CliError::msg(format!(
            "Error: No public port '{}' published for {}",
            crate::ports::key(p, proto),
            a.sandbox
        )));
    }
    for l in lines {
        io.print(&format!("{l}\n"));
    }
    Ok(())
}

pub async fn ps(client: &mut Client, a: PsArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let r = client.get("/containers/json").await?;
    let v = r.json().map_err(CliError::msg)?;
    let mut rows: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
    rows.sort_by_key(|c| c["Names"][0].as_str().unwrap_or("").to_string());
    let id_of = |c: &Value| {
        let id = c["Id"].as_str().unwrap_or("");
        if a.no_trunc {
            id.to_string()
        } else {
            crate::util::short_id(id).to_string()
        }
    };
    if a.quiet {
        for c in rows {
            io.print(&format!("{}\n", id_of(c)));
        }
        return Ok(());
    }
    let mut text = String::from("CONTAINER ID\tCOMMAND\tSTATUS\tNETWORKS\tNAMES\n");
    for c in rows {
        let nets: Vec<&str> = c["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let name = c["Names"][0].as_str().unwrap_or("").trim_start_matches('/');
        text.push_str(&format!(
            "{}\t\"{}\"\t{}\t{}\t{}\n",
            id_of(c),
            c["Command"].as_str().unwrap_or(""),
            c["Status"].as_str().unwrap_or(""),
            nets.join(","),
            name
        ));
    }
    io.print(&super::tabwriter::format_table(&text));
    Ok(())
}

pub async fn rm(client: &mut Client, a: RmArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut failed = false;
    for s in &a.sandboxes {
        let path = format!(
            "/containers/{}{}",
            query_escape(s),
            if a.force { "?force=1" } else { "" }
        );
        match client.delete(&path).await {
            Ok(_) => io.print(&format!("{s}\n")),
            Err(e) => {
                io.eprintln(&e.to_string());
                failed = true;
            }
        }
    }
    if failed {
        return Err(CliError {
            code: 1,
            message: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: RunArgs,
    }

    #[test]
    fn run_body() {
        let t = T::parse_from([
            "x",
            "-d",
            "--name",
            "web1",
            "--net",
            "mynet",
            "--ip",
            "10.0.0.5",
            "--network-alias",
            "db",
            "--",
            "sleep",
            "9",
        ]);
        let b = create_body(&t.a);
        assert_eq!(b["Cmd"], json!(["sleep", "9"]));
        assert_eq!(b["HostConfig"]["NetworkMode"], "mynet");
        let ep = &b["NetworkingConfig"]["EndpointsConfig"]["mynet"];
        assert_eq!(ep["IPAMConfig"]["IPv4Address"], "10.0.0.5");
        assert_eq!(ep["Aliases"], json!(["db"]));
        assert!(b.get("SandboxKey").is_none());
    }

    #[test]
    fn escaping() {
        assert_eq!(query_escape("web 1/x"), "web%201%2Fx");
    }
}
