//! `vswitch network graph [--format dot|svg|json]`: the topology from `GET /vswitch/graph` —
//! networks, containers with their interfaces and addresses, host interfaces, NAT, and for
//! overlays the endpoints on other hosts behind their VTEPs. SVG through graphviz's `dot`
//! when it is installed, DOT otherwise.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use clap::Args;
use serde_json::Value;

use crate::cli::client::Client;
use crate::cli::{CliError, Io};

/// The graphviz program that renders SVG.
pub const DOT_PROGRAM: &str = "dot";

#[derive(Args, Debug, Clone)]
pub struct GraphArgs {
    /// Output format: dot, svg (needs graphviz) or json [default: svg with graphviz, else dot]
    #[arg(long, value_parser = ["dot", "svg", "json"])]
    pub format: Option<String>,
}

pub async fn run(client: &mut Client, a: &GraphArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let r = client.get("/vswitch/graph").await?;
    let v = r.json().map_err(CliError::msg)?;
    let format = a
        .format
        .clone()
        .unwrap_or_else(|| if dot_installed() { "svg" } else { "dot" }.into());
    match format.as_str() {
        "json" => {
            let mut s =
                serde_json::to_string_pretty(&v).map_err(|e| CliError::msg(e.to_string()))?;
            s.push('\n');
            io.print(&s);
        }
        "svg" => io.print(&render_svg(&to_dot(&v))?),
        _ => io.print(&to_dot(&v)),
    }
    Ok(())
}

/// Whether graphviz's `dot` is on PATH.
pub fn dot_installed() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(DOT_PROGRAM))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn render_svg(dot: &str) -> Result<String, CliError> {
    let mut child = Command::new(DOT_PROGRAM)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CliError::msg(format!(
                "cannot run graphviz `{DOT_PROGRAM}` ({e}): install graphviz or use --format dot"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| CliError::msg(format!("{DOT_PROGRAM}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::msg(format!("{DOT_PROGRAM}: {e}")))?;
    if !out.status.success() {
        return Err(CliError::msg(format!(
            "{DOT_PROGRAM} -Tsvg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A DOT double-quoted string (labels use `\n` line breaks).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

fn lines(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn list(v: &Value, k: &str) -> Vec<String> {
    v[k].as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The topology as an undirected DOT graph (pure: no I/O).
pub fn to_dot(g: &Value) -> String {
    let mut d = String::new();
    let host = str_of(&g["Host"], "Name");
    let host_label = if host.is_empty() {
        "host".to_string()
    } else {
        format!("host {host}")
    };
    let _ = writeln!(d, "graph vswitch {{");
    let _ = writeln!(
        d,
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];",
        q(&format!("vswitch topology — {host_label}"))
    );
    let _ = writeln!(d, "  node [fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(d, "  edge [fontname=\"Helvetica\", fontsize=9];");
    let _ = writeln!(
        d,
        "  \"host\" [shape=box3d, style=filled, fillcolor=\"#e8e8e8\", label={}];",
        q(&host_label)
    );
    for v in g["Vteps"].as_array().into_iter().flatten() {
        let addr = str_of(v, "Address");
        let local = v["Local"].as_bool().unwrap_or(false);
        let label = if local {
            format!("VTEP {addr}\n(this host)")
        } else {
            format!("VTEP {addr}\n(other host)")
        };
        let _ = writeln!(
            d,
            "  {} [shape=hexagon, style=filled, fillcolor=\"#e6dcf5\", label={}];",
            q(&format!("vtep:{addr}")),
            q(&label)
        );
        if local {
            let _ = writeln!(d, "  \"host\" -- {};", q(&format!("vtep:{addr}")));
        }
    }
    let local_vtep = g["Vteps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["Local"].as_bool().unwrap_or(false))
        .map(|v| str_of(v, "Address").to_string());
    for n in g["Networks"].as_array().into_iter().flatten() {
        let id = str_of(n, "Id");
        let nid = q(&format!("net:{id}"));
        let subnets = list(n, "Subnets").join(", ");
        let gws = list(n, "Gateways").join(", ");
        let gw = if gws.is_empty() {
            String::new()
        } else {
            format!("gateway {gws}")
        };
        let mut flags = vec![str_of(n, "Driver").to_string()];
        if n["Internal"].as_bool().unwrap_or(false) {
            flags.push("internal".into());
        }
        if let Some(vni) = n["Vni"].as_u64() {
            flags.push(format!("VNI {vni}"));
        }
        let label = lines(&[str_of(n, "Name"), &flags.join(", "), &subnets, &gw]);
        let _ = writeln!(
            d,
            "  {nid} [shape=ellipse, style=filled, fillcolor=\"#dbe9f6\", label={}];",
            q(&label)
        );
        if let Some(hi) = n["HostInterface"].as_object() {
            let hid = q(&format!("hostif:{id}"));
            let addrs = hi
                .get("Addresses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let name = hi.get("Name").and_then(Value::as_str).unwrap_or_default();
            let _ = writeln!(
                d,
                "  {hid} [shape=box, style=filled, fillcolor=\"#e8e8e8\", label={}];",
                q(&lines(&[name, &addrs]))
            );
            let _ = writeln!(d, "  \"host\" -- {hid};");
            let _ = writeln!(d, "  {hid} -- {nid};");
        }
        if n["Masquerade"].as_bool().unwrap_or(false) {
            let nat = q(&format!("nat:{id}"));
            let _ = writeln!(
                d,
                "  {nat} [shape=diamond, style=filled, fillcolor=\"#fbe3d6\", label=\"NAT\\nmasquerade\"];"
            );
            let _ = writeln!(d, "  {nid} -- {nat};");
            let _ = writeln!(d, "  {nat} -- \"host\" [style=dashed, label=\"egress\"];");
        }
        if n["Vni"].is_u64() {
            if let Some(lv) = &local_vtep {
                let _ = writeln!(d, "  {nid} -- {};", q(&format!("vtep:{lv}")));
            }
        }
        for c in n["Containers"].as_array().into_iter().flatten() {
            let edge = lines(&[
                str_of(c, "Interface"),
                str_of(c, "IPv4Address"),
                str_of(c, "IPv6Address"),
                str_of(c, "MacAddress"),
            ]);
            let _ = writeln!(
                d,
                "  {} -- {nid} [label={}];",
                q(&format!("ctr:{}", str_of(c, "Id"))),
                q(&edge)
            );
        }
        for r in n["Remote"].as_array().into_iter().flatten() {
            let rid = q(&format!("remote:{}", str_of(r, "EndpointID")));
            let vtep = str_of(r, "Vtep");
            let _ = writeln!(
                d,
                "  {rid} [shape=box, style=\"rounded,dashed\", label={}];",
                q(&lines(&[str_of(r, "Name"), &format!("on {vtep}")]))
            );
            let edge = lines(&[
                str_of(r, "IPv4Address"),
                str_of(r, "IPv6Address"),
                str_of(r, "MacAddress"),
            ]);
            let _ = writeln!(
                d,
                "  {rid} -- {} [style=dashed, label={}];",
                q(&format!("vtep:{vtep}")),
                q(&edge)
            );
            if let Some(lv) = &local_vtep {
                if lv != vtep {
                    let _ = writeln!(
                        d,
                        "  {} -- {} [style=dotted, label=\"VXLAN\"];",
                        q(&format!("vtep:{lv}")),
                        q(&format!("vtep:{vtep}"))
                    );
                }
            }
        }
    }
    for c in g["Containers"].as_array().into_iter().flatten() {
        let ports: Vec<String> = c["Ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}:{} → {}/{}",
                    str_of(p, "HostIp"),
                    p["HostPort"],
                    p["ContainerPort"],
                    str_of(p, "Type")
                )
            })
            .collect();
        let _ = writeln!(
            d,
            "  {} [shape=box, style=\"rounded,filled\", fillcolor=\"#fdf2d0\", label={}];",
            q(&format!("ctr:{}", str_of(c, "Id"))),
            q(&lines(&[str_of(c, "Name"), &ports.join("\n")]))
        );
    }
    let _ = writeln!(d, "}}");
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_of_a_small_topology() {
        let g = serde_json::json!({
            "Host": {"Name": "h1"},
            "Vteps": [{"Address": "10.0.0.2", "Local": true}, {"Address": "10.0.0.3", "Local": false}],
            "Networks": [
                {"Id": "n1", "Name": "my\"net", "Driver": "bridge", "Internal": false,
                 "Subnets": ["172.18.0.0/16"], "Gateways": ["172.18.0.1"],
                 "HostInterface": {"Name": "br-n1", "Addresses": ["172.18.0.1/16"]},
                 "Masquerade": true, "Vni": null,
                 "Containers": [{"Id": "c1", "Interface": "eth0", "IPv4Address": "172.18.0.2/16", "IPv6Address": "", "MacAddress": "02:42:ac:12:00:02"}],
                 "Remote": []},
                {"Id": "o1", "Name": "ov", "Driver": "overlay", "Subnets": ["10.9.0.0/24"], "Gateways": [],
                 "HostInterface": null, "Masquerade": false, "Vni": 256, "Containers": [],
                 "Remote": [{"Name": "web2", "EndpointID": "e2", "IPv4Address": "10.9.0.3/24", "MacAddress": "02:42:0a:09:00:03", "Vtep": "10.0.0.3"}]}
            ],
            "Containers": [{"Id": "c1", "Name": "web1", "Ports": [{"HostIp": "0.0.0.0", "HostPort": 8080, "ContainerPort": 80, "Type": "tcp"}]}]
        });
        let d = to_dot(&g);
        assert!(
            d.starts_with("graph vswitch {\n") && d.ends_with("}\n"),
            "{d}"
        );
        assert!(d.contains(r##""net:n1" [shape=ellipse, style=filled, fillcolor="#dbe9f6", label="my\"net\nbridge\n172.18.0.0/16\ngateway 172.18.0.1"];"##), "{d}");
        assert!(
            d.contains(
                r##""ctr:c1" -- "net:n1" [label="eth0\n172.18.0.2/16\n02:42:ac:12:00:02"];"##
            ),
            "{d}"
        );
        assert!(d.contains(r##""hostif:n1" [shape=box, style=filled, fillcolor="#e8e8e8", label="br-n1\n172.18.0.1/16"];"##));
        assert!(d.contains(r##""net:n1" -- "nat:n1";"##));
        assert!(
            d.contains(r##"label="web1\n0.0.0.0:8080 → 80/tcp""##),
            "{d}"
        );
        assert!(d.contains(r##""net:o1" -- "vtep:10.0.0.2";"##));
        assert!(d.contains(r##""remote:e2" -- "vtep:10.0.0.3""##));
        assert!(
            d.contains(r##""vtep:10.0.0.2" -- "vtep:10.0.0.3" [style=dotted, label="VXLAN"];"##)
        );
        // Nothing the daemon sends can break out of a quoted string.
        assert_eq!(q("a\"b\\c\nd\u{7}"), r##""a\"b\\c\nd""##);
    }
}
