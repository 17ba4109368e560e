//! `network ls` / `network list`.

use std::rc::Rc;

use clap::Args;

use super::types::SUMMARY_LIST_TY;
use crate::cli::client::{first_json_value, Client};
use crate::cli::format::{truncate_id, write_rows, HeaderContext};
use crate::cli::gojson;
use crate::cli::goval::{self, Object, Value};
use crate::cli::opts::{natural_cmp, parse_filter, parse_go_bool, FilterArg, Filters};
use crate::cli::{CliError, Io};

/// `docker network ls` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter", value_name = "filter", value_parser = parse_filter)]
    pub filter: Vec<FilterArg>,

    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'
    #[arg(long, value_name = "string")]
    pub format: Option<String>,

    /// Do not truncate the output
    #[arg(long = "no-trunc", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub no_trunc: bool,

    /// Only display network IDs
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub quiet: bool,
}

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// docker's `network.NewFormat`.
pub fn new_format(source: &str, quiet: bool) -> String {
    match source {
        "table" if quiet => "{{.ID}}".into(),
        "table" => DEFAULT_TABLE.into(),
        "raw" if quiet => "network_id: {{.ID}}".into(),
        "raw" => {
            "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
                .into()
        }
        other => other.into(),
    }
}

pub async fn run(client: &mut Client, args: &LsArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let query = Filters::from_args(&args.filter).query();
    let resp = client.get(&format!("/networks{query}")).await?;
    let out = render(&resp.body, args)?;
    io.print(&out);
    Ok(())
}

/// Renders a `GET /networks` body as `network ls` prints it.
pub fn render(body: &[u8], args: &LsArgs) -> Result<String, CliError> {
    let json = first_json_value(body).map_err(CliError::msg)?;
    let list = goval::decode(&SUMMARY_LIST_TY, &json).map_err(CliError::msg)?;
    let mut nets: Vec<Value> = match list {
        Value::Slice { items: Some(v), .. } => v.as_ref().clone(),
        _ => Vec::new(),
    };
    nets.sort_by(|a, b| natural_cmp(&field_str(a, "Name"), &field_str(b, "Name")));
    let source = match args.format.as_deref() {
        None | Some("") => "table",
        Some(f) => f,
    };
    let format = new_format(source, args.quiet);
    let rows: Vec<Value> = nets
        .into_iter()
        .map(|n| {
            Value::Object(Rc::new(NetworkRow {
                trunc: !args.no_trunc,
                n,
            }))
        })
        .collect();
    write_rows(&format, &rows, &header()).map_err(CliError::msg)
}

fn header() -> Value {
    HeaderContext::new(&[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv4", "IPV4"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ])
    .value()
}

fn field_str(n: &Value, name: &str) -> String {
    n.struct_field(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn field_bool(n: &Value, name: &str) -> bool {
    matches!(n.struct_field(name), Some(Value::Bool(true)))
}

/// docker's `networkContext`: one `network ls` row (`*network.networkContext`).
pub struct NetworkRow {
    pub trunc: bool,
    /// The decoded `network.Summary`.
    pub n: Value,
}

const ROW_METHODS: &[&str] = &[
    "CreatedAt",
    "Driver",
    "ID",
    "IPv4",
    "IPv6",
    "Internal",
    "Labels",
    "Name",
    "Scope",
];

impl NetworkRow {
    fn labels(&self) -> Vec<(String, String)> {
        match self.n.struct_field("Labels") {
            Some(Value::Map {
                entries: Some(m), ..
            }) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn method(&self, name: &str) -> Option<String> {
        Some(match name {
            "ID" => {
                let id = field_str(&self.n, "ID");
                if self.trunc {
                    truncate_id(&id)
                } else {
                    id
                }
            }
            "Name" | "Driver" | "Scope" => field_str(&self.n, name),
            "IPv4" => field_bool(&self.n, "EnableIPv4").to_string(),
            "IPv6" => field_bool(&self.n, "EnableIPv6").to_string(),
            "Internal" => field_bool(&self.n, "Internal").to_string(),
            // Go iterates the map in random order; sorted is one of those orders.
            "Labels" => self
                .labels()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            "CreatedAt" => match self.n.struct_field("Created") {
                Some(Value::Time(t)) => t.go_string(),
                _ => String::new(),
            },
            _ => return None,
        })
    }
}

impl Object for NetworkRow {
    fn type_name(&self) -> String {
        "*network.networkContext".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name == "Label" {
            if args.len() != 1 {
                return Some(Err(format!(
                    "wrong number of args for Label: want 1 got {}",
                    args.len()
                )));
            }
            let Value::Str(key) = &args[0] else {
                return Some(Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                )));
            };
            let v = self
                .labels()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_default();
            return Some(Ok(Value::Str(v)));
        }
        if name == "Header" {
            return Some(Ok(Value::Nil));
        }
        let v = self.method(name)?;
        if !args.is_empty() {
            return Some(Err(format!(
                "wrong number of args for {name}: want 0 got {}",
                args.len()
            )));
        }
        Some(Ok(Value::Str(v)))
    }

    fn to_json(&self) -> String {
        // formatter.MarshalJSON: the no-argument methods, keys sorted, json.Marshal
        // (HTML escaping on).
        let mut o = gojson::ObjectWriter::new();
        for m in ROW_METHODS {
            o.str(m, &self.method(m).unwrap_or_default());
        }
        o.finish()
    }

    fn go_fmt(&self) -> String {
        let mut s = format!("{{{{<nil>}} {} ", self.trunc);
        self.n.go_fmt(&mut s, false);
        s.push('}');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run_line;
    use crate::cli::testutil::FakeDaemon;

    pub(crate) const LIST: &str = r#"[{"Name":"bridge","Id":"158bd6e7dde4a2d0ed46a1f2d3ea6e49cda9a4a0a9ac22d4c4c5e40bb3f1d7a0","Created":"2025-06-01T10:00:00.123456789Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.enable_icc":"true","com.docker.network.bridge.enable_ip_masquerade":"true","com.docker.network.bridge.host_binding_ipv4":"0.0.0.0","com.docker.network.bridge.name":"docker0","com.docker.network.driver.mtu":"1500"},"Labels":{}},
{"Name":"none","Id":"6a4f5c2e1d0b9a8f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a291800","Created":"2025-06-01T10:00:00.3Z","Scope":"local","Driver":"null","EnableIPv4":false,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":null},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}},
{"Name":"host","Id":"9f3d0a3c0f1c4b7f0d38e1e7d0c3c3f1a0b2e5f4d6c7b8a9e0f1d2c3b4a5e6f7","Created":"2025-06-01T10:00:00.2Z","Scope":"local","Driver":"host","EnableIPv4":false,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":null},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}}]"#;

    const EXTRA: &str = r#"[{"Name":"net10","Id":"b52a16c4a58876bf271a02b62ee39797ebcb50aed8cfa829715f293b5af45873","Created":"2025-06-02T09:14:03.41234567Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":true,"Internal":true,"Labels":{"zeta":"1","alpha":"x=y","a&b":"<c>"}},
{"Name":"net9","Id":"sha256:aaaabbbbccccddddeeee","Created":"2025-06-02T09:14:03+02:00","Scope":"local","Driver":"bridge","IPAM":{"Driver":"default"},"Labels":{}}]"#;

    fn ls(body: &str, args: LsArgs) -> String {
        render(body.as_bytes(), &args).unwrap()
    }

    #[test]
    fn default_table_exact_bytes() {
        assert_eq!(
            ls(LIST, LsArgs::default()),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             158bd6e7dde4   bridge    bridge    local\n\
             9f3d0a3c0f1c   host      host      local\n\
             6a4f5c2e1d0b   none      null      local\n"
        );
        assert_eq!(
            ls("[]\n", LsArgs::default()),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
        assert_eq!(
            ls("null", LsArgs::default()),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
    }

    #[test]
    fn no_trunc_quiet_and_formats() {
        let no_trunc = LsArgs {
            no_trunc: true,
            ..Default::default()
        };
        assert_eq!(
            ls(LIST, no_trunc),
            "NETWORK ID                                                         NAME      DRIVER    SCOPE\n\
             158bd6e7dde4a2d0ed46a1f2d3ea6e49cda9a4a0a9ac22d4c4c5e40bb3f1d7a0   bridge    bridge    local\n\
             9f3d0a3c0f1c4b7f0d38e1e7d0c3c3f1a0b2e5f4d6c7b8a9e0f1d2c3b4a5e6f7   host      host      local\n\
             6a4f5c2e1d0b9a8f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a291800   none      null      local\n"
        );
        let quiet = LsArgs {
            quiet: true,
            ..Default::default()
        };
        assert_eq!(
            ls(LIST, quiet),
            "158bd6e7dde4\n9f3d0a3c0f1c\n6a4f5c2e1d0b\n"
        );
        let f = |fmt: &str| LsArgs {
            format: Some(fmt.into()),
            ..Default::default()
        };
        assert_eq!(ls(LIST, f("{{.Name}}")), "bridge\nhost\nnone\n");
        assert_eq!(
            ls(LIST, f("table {{.ID}}\\t{{.Name}}")),
            "NETWORK ID     NAME\n158bd6e7dde4   bridge\n9f3d0a3c0f1c   host\n6a4f5c2e1d0b   none\n"
        );
        assert_eq!(
            ls(LIST, f("json")).lines().next().unwrap(),
            r#"{"CreatedAt":"2025-06-01 10:00:00.123456789 +0000 UTC","Driver":"bridge","ID":"158bd6e7dde4","IPv4":"true","IPv6":"false","Internal":"false","Labels":"","Name":"bridge","Scope":"local"}"#
        );
        assert_eq!(
            ls(LIST, f("raw")),
            "network_id: 158bd6e7dde4\nname: bridge\ndriver: bridge\nscope: local\n\n\
             network_id: 9f3d0a3c0f1c\nname: host\ndriver: host\nscope: local\n\n\
             network_id: 6a4f5c2e1d0b\nname: none\ndriver: null\nscope: local\n\n"
        );
    }

    #[test]
    fn natural_sort_and_extra_placeholders() {
        let mut all: Vec<serde_json::Value> = serde_json::from_str(LIST).unwrap();
        all.extend(serde_json::from_str::<Vec<serde_json::Value>>(EXTRA).unwrap());
        let body = serde_json::to_string(&all).unwrap();
        assert_eq!(
            ls(&body, LsArgs::default()),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             158bd6e7dde4   bridge    bridge    local\n\
             9f3d0a3c0f1c   host      host      local\n\
             aaaabbbbcccc   net9      bridge    local\n\
             b52a16c4a588   net10     bridge    local\n\
             6a4f5c2e1d0b   none      null      local\n"
        );
        let f = LsArgs {
            format: Some("table {{.ID}}\\t{{.Name}}\\t{{.Labels}}\\t{{.CreatedAt}}\\t{{.IPv4}}\\t{{.IPv6}}\\t{{.Internal}}\\t{{.Label \"alpha\"}}".into()),
            ..Default::default()
        };
        let got = ls(EXTRA, f);
        assert_eq!(
            got,
            "NETWORK ID     NAME      LABELS                     CREATED AT                               IPV4      IPV6      INTERNAL   alpha\n\
             aaaabbbbcccc   net9                                 2025-06-02 09:14:03 +0200 +0200          false     false     false      \n\
             b52a16c4a588   net10     a&b=<c>,alpha=x=y,zeta=1   2025-06-02 09:14:03.41234567 +0000 UTC   true      true      true       x=y\n"
        );
        let j = LsArgs {
            format: Some("json".into()),
            ..Default::default()
        };
        assert!(ls(EXTRA, j).contains(r#""Labels":"a\u0026b=\u003cc\u003e,alpha=x=y,zeta=1""#));
        let j = LsArgs {
            format: Some("{{json .Labels}}|{{.Name | upper}}|{{pad .Scope 1 1}}|".into()),
            ..Default::default()
        };
        assert_eq!(
            ls(EXTRA, j),
            "\"\"|NET9| local |\n\"a&b=<c>,alpha=x=y,zeta=1\"|NET10| local |\n"
        );
    }

    #[test]
    fn template_errors_and_bad_created() {
        let f = |fmt: &str| LsArgs {
            format: Some(fmt.into()),
            ..Default::default()
        };
        assert_eq!(
            render(LIST.as_bytes(), &f("{{.Foo}}")).unwrap_err().message.unwrap(),
            "template parsing error: template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type *network.networkContext"
        );
        assert_eq!(
            render(LIST.as_bytes(), &f("{{.Name}} {{.Label}}")).unwrap_err().message.unwrap(),
            "template parsing error: template: :1:12: executing \"\" at <.Label>: wrong number of args for Label: want 1 got 0"
        );
        assert_eq!(
            render(LIST.as_bytes(), &f("{{.ID 1}}")).unwrap_err().message.unwrap(),
            "template parsing error: template: :1:2: executing \"\" at <.ID>: wrong number of args for ID: want 0 got 1"
        );
        assert_eq!(
            render(br#"[{"Name":"x","Created":""}]"#, &LsArgs::default())
                .unwrap_err()
                .message
                .unwrap(),
            r#"parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006""#
        );
    }

    #[tokio::test]
    async fn filters_reach_the_daemon() {
        let d = FakeDaemon::start(|_| (200, "application/json", "[]".into())).await;
        let (code, out, _) = run_line(
            &d.host(),
            &[
                "network",
                "ls",
                "-f",
                "type=custom",
                "--filter",
                "name=a",
                "-f",
                "name=b",
                "-q",
            ],
            "",
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(out, "");
        assert_eq!(
            d.api_log(),
            vec!["GET /v1.50/networks?filters=%7B%22name%22%3A%7B%22a%22%3Atrue%2C%22b%22%3Atrue%7D%2C%22type%22%3A%7B%22custom%22%3Atrue%7D%7D "]
        );
    }
}
