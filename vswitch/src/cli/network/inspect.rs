//! `network inspect`.

use clap::Args;

use super::network_path;
use super::types::INSPECT_TY;
use crate::cli::client::{first_json_value, Client};
use crate::cli::gojson;
use crate::cli::goval::{self, from_json_any};
use crate::cli::opts::parse_go_bool;
use crate::cli::template::{ExecOptions, Template};
use crate::cli::{CliError, Io};

/// `docker network inspect` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json', 'TEMPLATE'
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,

    /// Verbose output for diagnostics
    #[arg(short = 'v', long = "verbose", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub verbose: bool,

    /// Networks to inspect
    #[arg(value_name = "NETWORK", required = true, num_args = 1..)]
    pub names: Vec<String>,
}

/// docker's inspectors: raw bytes re-indented, compacted (`json`), or a template.
pub enum Inspector {
    Indented(Vec<Vec<u8>>),
    Json(Vec<Vec<u8>>),
    Template(Template, String),
}

impl Inspector {
    /// `NewTemplateInspectorFromString`; a bad template exits 64 like docker.
    pub fn new(format: Option<&str>) -> Result<Inspector, CliError> {
        match format {
            None | Some("") => Ok(Inspector::Indented(Vec::new())),
            Some("json") => Ok(Inspector::Json(Vec::new())),
            Some(f) => Template::parse(f)
                .map(|t| Inspector::Template(t, String::new()))
                .map_err(|e| CliError::status(64, format!("template parsing error: {e}"))),
        }
    }

    /// Adds one daemon answer. Errors are per element (`template parsing error: …`).
    pub fn inspect(&mut self, typed: &goval::Value, raw: &[u8]) -> Result<(), String> {
        match self {
            Inspector::Indented(v) | Inspector::Json(v) => {
                v.push(raw.to_vec());
                Ok(())
            }
            Inspector::Template(t, out) => {
                let s = match t.execute(typed, &ExecOptions::default()) {
                    Ok(s) => s,
                    Err(_) => {
                        // docker retries on the raw JSON (map[string]any) with
                        // missingkey=error, and reports that attempt's error.
                        let json = first_json_value(raw)
                            .map_err(|e| format!("unable to read inspect data: {e}"))?;
                        let opts = ExecOptions {
                            missing_key_error: true,
                            header: false,
                        };
                        t.execute(&from_json_any(&json), &opts)
                            .map_err(|e| format!("template parsing error: {}", e.message))?
                    }
                };
                out.push_str(&s);
                out.push('\n');
                Ok(())
            }
        }
    }

    /// What `Flush` writes to stdout.
    pub fn flush(&self) -> Result<String, String> {
        match self {
            Inspector::Indented(v) | Inspector::Json(v) => {
                if v.is_empty() {
                    return Ok("[]\n".into());
                }
                let mut joined = vec![b'['];
                for (i, r) in v.iter().enumerate() {
                    if i > 0 {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(r);
                }
                joined.push(b']');
                let mut s = if matches!(self, Inspector::Indented(_)) {
                    gojson::indent(&joined, "", "    ")
                } else {
                    gojson::compact(&joined)
                }
                .map_err(|e| e.to_string())?;
                s.push('\n');
                Ok(s)
            }
            Inspector::Template(_, out) => {
                if out.is_empty() {
                    Ok("\n".into())
                } else {
                    Ok(out.clone())
                }
            }
        }
    }
}

/// A logrus text-formatter error line, as the docker CLI logs it.
fn logrus_error(msg: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = crate::cli::gotime::GoTime {
        unix: now,
        nanos: 0,
        offset: None,
    };
    format!("time=\"{}\" level=error msg={msg:?}", t.rfc3339_nano())
}

pub async fn run(client: &mut Client, args: &InspectArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut inspector = Inspector::new(args.format.as_deref())?;
    let mut errs: Vec<String> = Vec::new();
    for name in &args.names {
        let path = match network_path(name) {
            Ok(p) => p,
            Err(e) => {
                errs.push(e.to_string());
                continue;
            }
        };
        let q = if args.verbose { "?verbose=true" } else { "" };
        let resp = match client.get(&format!("{path}{q}")).await {
            Ok(r) => r,
            Err(e) if e.is_connection_error() => return Err(e.into()),
            Err(e) => {
                errs.push(e.to_string());
                continue;
            }
        };
        let typed = first_json_value(&resp.body).and_then(|j| goval::decode(&INSPECT_TY, &j));
        let typed = match typed {
            Ok(t) => t,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        if let Err(e) = inspector.inspect(&typed, &resp.body) {
            errs.push(e);
        }
    }
    match inspector.flush() {
        Ok(s) => io.print(&s),
        // docker logs the failure through logrus and prints nothing
        Err(e) => io.eprintln(&logrus_error(&e)),
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::msg(errs.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::run_line;
    use crate::cli::testutil::FakeDaemon;

    /// `GET /networks/testbridge1` as moby sends it (compact, trailing newline).
    const TB1: &str = "{\"Name\":\"testbridge1\",\"Id\":\"1980f958fec747f7911bd17d9c27a0f9f0a0f95567610f70571116154169c9f0\",\"Created\":\"2025-06-02T09:14:03.671883303Z\",\"Scope\":\"local\",\"Driver\":\"bridge\",\"EnableIPv4\":true,\"EnableIPv6\":false,\"IPAM\":{\"Driver\":\"default\",\"Options\":{},\"Config\":[{\"Subnet\":\"10.15.20.0/24\",\"Gateway\":\"10.15.20.1\",\"AuxiliaryAddresses\":{\"1\":\"10.15.20.2\",\"2\":\"10.15.20.3\"}}]},\"Internal\":false,\"Attachable\":false,\"Ingress\":false,\"ConfigFrom\":{\"Network\":\"\"},\"ConfigOnly\":false,\"Containers\":{\"4d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4\":{\"Name\":\"web1\",\"EndpointID\":\"a6a20d56e49f155a000d54dd68a0c7c72de6d6b5a32fde09a1185c1ea04ff076\",\"MacAddress\":\"02:42:0a:0f:14:32\",\"IPv4Address\":\"10.15.20.50/24\",\"IPv6Address\":\"\"}},\"Options\":{\"com.docker.network.bridge.host_binding_ipv4\":\"10.10.10.101\",\"com.docker.network.bridge.name\":\"linuxbridge1\"},\"Labels\":{}}\n";

    /// What `docker network inspect testbridge1` printed for that body (Go json.Indent).
    const TB1_OUT: &str = r#"[
    {
        "Name": "testbridge1",
        "Id": "1980f958fec747f7911bd17d9c27a0f9f0a0f95567610f70571116154169c9f0",
        "Created": "2025-06-02T09:14:03.671883303Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "10.15.20.0/24",
                    "Gateway": "10.15.20.1",
                    "AuxiliaryAddresses": {
                        "1": "10.15.20.2",
                        "2": "10.15.20.3"
                    }
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Containers": {
            "4d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4": {
                "Name": "web1",
                "EndpointID": "a6a20d56e49f155a000d54dd68a0c7c72de6d6b5a32fde09a1185c1ea04ff076",
                "MacAddress": "02:42:0a:0f:14:32",
                "IPv4Address": "10.15.20.50/24",
                "IPv6Address": ""
            }
        },
        "Options": {
            "com.docker.network.bridge.host_binding_ipv4": "10.10.10.101",
            "com.docker.network.bridge.name": "linuxbridge1"
        },
        "Labels": {}
    }
]
"#;

    const MINI: &str =
        "{\"Id\":\"abc\",\"Name\":\"mini\", \"X\": [ ], \"Y\":{ }, \"S\":\"a\\u003cb\\\"c\"}\n";

    const BRIDGE: &str = r#"{"Name":"bridge","Id":"158bd6e7dde4a2d0ed46a1f2d3ea6e49cda9a4a0a9ac22d4c4c5e40bb3f1d7a0","Created":"2025-06-01T10:00:00.123456789Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{"com.docker.network.bridge.name":"docker0"},"Labels":{}}"#;

    async fn daemon() -> FakeDaemon {
        FakeDaemon::start(|r| {
            let name = r.path.trim_start_matches("/v1.50/networks/");
            let name = name.split('?').next().unwrap_or("");
            match name {
                "testbridge1" => (200, "application/json", TB1.into()),
                "mini" => (200, "application/json", MINI.into()),
                "bridge" => (200, "application/json", BRIDGE.into()),
                n => (
                    404,
                    "application/json",
                    format!("{{\"message\":\"network {n} not found\"}}\n"),
                ),
            }
        })
        .await
    }

    #[tokio::test]
    async fn indented_output_keeps_daemon_order() {
        let d = daemon().await;
        let (code, out, err) =
            run_line(&d.host(), &["network", "inspect", "testbridge1"], "").await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, TB1_OUT);
        let (code, out, _) = run_line(&d.host(), &["network", "inspect", "mini"], "").await;
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "[\n    {\n        \"Id\": \"abc\",\n        \"Name\": \"mini\",\n        \"X\": [],\n        \"Y\": {},\n        \"S\": \"a\\u003cb\\\"c\"\n    }\n]\n"
        );
    }

    #[tokio::test]
    async fn failures_and_json_format() {
        let d = daemon().await;
        let (code, out, err) = run_line(&d.host(), &["network", "inspect", "a", "b"], "").await;
        assert_eq!(code, 1);
        assert_eq!(out, "[]\n");
        assert_eq!(
            err,
            "Error response from daemon: network a not found\nError response from daemon: network b not found\n"
        );
        let (code, out, err) = run_line(
            &d.host(),
            &["network", "inspect", "--format", "json", "mini", "nope"],
            "",
        )
        .await;
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "[{\"Id\":\"abc\",\"Name\":\"mini\",\"X\":[],\"Y\":{},\"S\":\"a\\u003cb\\\"c\"}]\n"
        );
        assert_eq!(err, "Error response from daemon: network nope not found\n");
        let (code, out, err) = run_line(
            &d.host(),
            &["network", "inspect", "-f", "{{.Name}}", "nope"],
            "",
        )
        .await;
        assert_eq!((code, out.as_str()), (1, "\n"));
        assert_eq!(err, "Error response from daemon: network nope not found\n");
        let (code, out, err) = run_line(&d.host(), &["network", "inspect", " "], "").await;
        assert_eq!((code, out.as_str()), (1, "[]\n"));
        assert_eq!(err, "invalid network name or ID: value is empty\n");
        let (code, _, err) =
            run_line(&d.host(), &["network", "inspect", "-f", "{{.Foo", "x"], "").await;
        assert_eq!(code, 64);
        assert_eq!(
            err,
            "template parsing error: template: :1: unclosed action\n"
        );
    }

    #[tokio::test]
    async fn templates_like_docker() {
        let d = daemon().await;
        let f = |fmt: &'static str, names: &'static [&'static str]| {
            let mut v = vec!["network", "inspect", "-f", fmt];
            v.extend_from_slice(names);
            v
        };
        let (code, out, _) = run_line(
            &d.host(),
            &f(
                "{{.IPAM.Config}}|{{json .IPAM}}|{{.Created}}|{{.ConfigFrom}}|{{.Containers}}|{{.Labels}}|{{.Peers}}|{{json .Peers}}|{{json .Labels}}",
                &["testbridge1", "bridge"],
            ),
            "",
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "[{10.15.20.0/24  10.15.20.1 map[1:10.15.20.2 2:10.15.20.3]}]|{\"Driver\":\"default\",\"Options\":{},\"Config\":[{\"Subnet\":\"10.15.20.0/24\",\"Gateway\":\"10.15.20.1\",\"AuxiliaryAddresses\":{\"1\":\"10.15.20.2\",\"2\":\"10.15.20.3\"}}]}|2025-06-02 09:14:03.671883303 +0000 UTC|{}|map[4d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4:{web1 a6a20d56e49f155a000d54dd68a0c7c72de6d6b5a32fde09a1185c1ea04ff076 02:42:0a:0f:14:32 10.15.20.50/24 }]|map[]|[]|null|{}\n\
             [{172.17.0.0/16  172.17.0.1 map[]}]|{\"Driver\":\"default\",\"Options\":null,\"Config\":[{\"Subnet\":\"172.17.0.0/16\",\"Gateway\":\"172.17.0.1\"}]}|2025-06-01 10:00:00.123456789 +0000 UTC|{}|map[]|map[]|[]|null|{}\n"
        );
        let (_, out, _) = run_line(&d.host(), &f("{{json .}}", &["mini"]), "").await;
        assert_eq!(
            out,
            "{\"Name\":\"mini\",\"Id\":\"abc\",\"Created\":\"0001-01-01T00:00:00Z\",\"Scope\":\"\",\"Driver\":\"\",\"EnableIPv4\":false,\"EnableIPv6\":false,\"IPAM\":{\"Driver\":\"\",\"Options\":null,\"Config\":null},\"Internal\":false,\"Attachable\":false,\"Ingress\":false,\"ConfigFrom\":{\"Network\":\"\"},\"ConfigOnly\":false,\"Containers\":null,\"Options\":null,\"Labels\":null}\n"
        );
        // typed execution fails on .Id/.X, the raw-JSON fallback succeeds
        let (_, out, _) =
            run_line(&d.host(), &f("{{.X}}|{{.S}}|{{.Y}}|{{.Id}}", &["mini"]), "").await;
        assert_eq!(out, "[]|a<b\"c|map[]|abc\n");
        let (code, out, err) = run_line(&d.host(), &f("{{.Foo}}", &["testbridge1"]), "").await;
        assert_eq!((code, out.as_str()), (1, "\n"));
        assert_eq!(
            err,
            "template parsing error: template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\"\n"
        );
        let (_, out, _) = run_line(
            &d.host(),
            &f("{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.AuxAddress}}{{end}}|{{index .Options \"com.docker.network.bridge.name\"}}|{{index .Labels \"zz\"}}|{{.Labels.zz}}|{{len .Containers}}|{{.Name}}\\t{{.ID}}", &["testbridge1"]),
            "",
        )
        .await;
        assert_eq!(
            out,
            "10.15.20.0/24 10.15.20.1 map[1:10.15.20.2 2:10.15.20.3]|linuxbridge1||<no value>|1|testbridge1\\t1980f958fec747f7911bd17d9c27a0f9f0a0f95567610f70571116154169c9f0\n"
        );
        let (_, _, _) = run_line(&d.host(), &["network", "inspect", "-v", "bridge"], "").await;
        assert!(d
            .api_log()
            .iter()
            .any(|l| l.starts_with("GET /v1.50/networks/bridge?verbose=true ")));
    }
}
