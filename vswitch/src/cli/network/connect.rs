//! `network connect` and `network disconnect`.

use std::collections::BTreeMap;

use clap::Args;

use super::network_path;
use crate::cli::client::Client;
use crate::cli::gojson::{self, ObjectWriter};
use crate::cli::opts::{flatten, parse_csv, parse_go_bool, parse_go_int, trim_id, CsvList};
use crate::cli::{CliError, Io};

/// `docker network connect` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings", value_parser = parse_csv)]
    pub alias: Vec<CsvList>,

    /// driver options for the network
    #[arg(long = "driver-opt", value_name = "strings", value_parser = parse_csv)]
    pub driver_opt: Vec<CsvList>,

    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(
        long = "gw-priority",
        default_value = "0",
        allow_negative_numbers = true,
        value_name = "int",
        value_parser = parse_go_int
    )]
    pub gw_priority: i64,

    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(
        long,
        default_value = "",
        value_name = "string",
        hide_default_value = true
    )]
    pub ip: String,

    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(
        long,
        default_value = "",
        value_name = "string",
        hide_default_value = true
    )]
    pub ip6: String,

    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,

    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings", value_parser = parse_csv)]
    pub link_local_ip: Vec<CsvList>,

    /// Network to connect to
    #[arg(value_name = "NETWORK")]
    pub network: String,

    /// Container to connect
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `docker network disconnect` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub force: bool,

    /// Network to disconnect from
    #[arg(value_name = "NETWORK")]
    pub network: String,

    /// Container to disconnect
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// docker's `convertDriverOpt`: `k=v`, both trimmed; the key must not be empty.
fn driver_opts(opts: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for o in opts {
        let Some((k, v)) = o.split_once('=') else {
            return Err("invalid key/value pair format in driver options".into());
        };
        let k = k.trim();
        if k.is_empty() {
            return Err("invalid key/value pair format in driver options".into());
        }
        m.insert(k.to_string(), v.trim().to_string());
    }
    Ok(m)
}

/// The `network.ConnectOptions` body (Go encoder bytes, trailing newline).
pub fn connect_body(args: &ConnectArgs, container: &str) -> Result<String, String> {
    let dopts = driver_opts(&flatten(&args.driver_opt))?;
    let mut ipam = ObjectWriter::new();
    if !args.ip.is_empty() {
        ipam.str("IPv4Address", &args.ip);
    }
    if !args.ip6.is_empty() {
        ipam.str("IPv6Address", &args.ip6);
    }
    let lls = flatten(&args.link_local_ip);
    if !lls.is_empty() {
        ipam.raw("LinkLocalIPs", &gojson::string_slice(Some(&lls)));
    }
    let links = if args.link.is_empty() {
        None
    } else {
        Some(args.link.as_slice())
    };
    let aliases = flatten(&args.alias);
    let mut ep = ObjectWriter::new();
    ep.raw("IPAMConfig", &ipam.finish())
        .raw("Links", &gojson::string_slice(links))
        .raw("Aliases", &gojson::string_slice(Some(&aliases)))
        .str("MacAddress", "")
        .raw("DriverOpts", &gojson::string_map(&dopts))
        .int("GwPriority", args.gw_priority)
        .str("NetworkID", "")
        .str("EndpointID", "")
        .str("Gateway", "")
        .str("IPAddress", "")
        .int("IPPrefixLen", 0)
        .str("IPv6Gateway", "")
        .str("GlobalIPv6Address", "")
        .int("GlobalIPv6PrefixLen", 0)
        .raw("DNSNames", "null");
    let mut o = ObjectWriter::new();
    o.str("Container", container)
        .raw("EndpointConfig", &ep.finish());
    let mut s = o.finish();
    s.push('\n');
    Ok(s)
}

/// The `network.DisconnectOptions` body.
pub fn disconnect_body(container: &str, force: bool) -> String {
    let mut o = ObjectWriter::new();
    o.str("Container", container).bool("Force", force);
    let mut s = o.finish();
    s.push('\n');
    s
}

pub async fn run_connect(
    client: &mut Client,
    args: &ConnectArgs,
    _io: &mut Io<'_>,
) -> Result<(), CliError> {
    // docker checks the driver options before the references
    driver_opts(&flatten(&args.driver_opt)).map_err(CliError::msg)?;
    let path = network_path(&args.network)?;
    let container = trim_id("container", &args.container).map_err(CliError::msg)?;
    let body = connect_body(args, &container).map_err(CliError::msg)?;
    client.post_json(&format!("{path}/connect"), body).await?;
    Ok(())
}

pub async fn run_disconnect(
    client: &mut Client,
    args: &DisconnectArgs,
    _io: &mut Io<'_>,
) -> Result<(), CliError> {
    let path = network_path(&args.network)?;
    let container = trim_id("container", &args.container).map_err(CliError::msg)?;
    client
        .post_json(
            &format!("{path}/disconnect"),
            disconnect_body(&container, args.force),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::run_line;
    use crate::cli::testutil::FakeDaemon;

    const ZERO: &str = r#""MacAddress":"","#;

    #[tokio::test]
    async fn bodies_match_docker() {
        let d = FakeDaemon::start(|r| {
            if r.path.contains("/nonet/") {
                (
                    404,
                    "application/json",
                    "{\"message\":\"network nonet not found\"}".into(),
                )
            } else {
                (200, "", String::new())
            }
        })
        .await;
        let (code, out, err) =
            run_line(&d.host(), &["network", "connect", "mynetwork", "web1"], "").await;
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
        let (code, _, _) = run_line(
            &d.host(),
            &[
                "network",
                "connect",
                "--alias",
                "foo",
                "--ip",
                "10.15.20.50",
                "testbridge1",
                "web1",
            ],
            "",
        )
        .await;
        assert_eq!(code, 0);
        let (code, _, _) = run_line(
            &d.host(),
            &[
                "network",
                "connect",
                "--alias",
                "a1",
                "--alias",
                "a2,a3",
                "--ip6",
                "fd00:1::5",
                "--link",
                "other:alias",
                "--link-local-ip",
                "169.254.1.1",
                "--driver-opt",
                "k = v ",
                "--gw-priority",
                "5",
                "v6net",
                "web1",
            ],
            "",
        )
        .await;
        assert_eq!(code, 0);
        let (code, _, _) = run_line(
            &d.host(),
            &["network", "disconnect", "-f", "v6net", "web1"],
            "",
        )
        .await;
        assert_eq!(code, 0);
        let (code, _, _) =
            run_line(&d.host(), &["network", "disconnect", "v6net", "web1"], "").await;
        assert_eq!(code, 0);
        let log = d.api_log();
        assert_eq!(
            log[0],
            "POST /v1.50/networks/mynetwork/connect {\"Container\":\"web1\",\"EndpointConfig\":{\"IPAMConfig\":{},\"Links\":null,\"Aliases\":[],\"MacAddress\":\"\",\"DriverOpts\":{},\"GwPriority\":0,\"NetworkID\":\"\",\"EndpointID\":\"\",\"Gateway\":\"\",\"IPAddress\":\"\",\"IPPrefixLen\":0,\"IPv6Gateway\":\"\",\"GlobalIPv6Address\":\"\",\"GlobalIPv6PrefixLen\":0,\"DNSNames\":null}}\n"
        );
        assert!(log[1].starts_with(
            "POST /v1.50/networks/testbridge1/connect {\"Container\":\"web1\",\"EndpointConfig\":{\"IPAMConfig\":{\"IPv4Address\":\"10.15.20.50\"},\"Links\":null,\"Aliases\":[\"foo\"],"
        ));
        assert_eq!(
            log[2],
            "POST /v1.50/networks/v6net/connect {\"Container\":\"web1\",\"EndpointConfig\":{\"IPAMConfig\":{\"IPv6Address\":\"fd00:1::5\",\"LinkLocalIPs\":[\"169.254.1.1\"]},\"Links\":[\"other:alias\"],\"Aliases\":[\"a1\",\"a2\",\"a3\"],\"MacAddress\":\"\",\"DriverOpts\":{\"k\":\"v\"},\"GwPriority\":5,\"NetworkID\":\"\",\"EndpointID\":\"\",\"Gateway\":\"\",\"IPAddress\":\"\",\"IPPrefixLen\":0,\"IPv6Gateway\":\"\",\"GlobalIPv6Address\":\"\",\"GlobalIPv6PrefixLen\":0,\"DNSNames\":null}}\n"
        );
        assert!(log[2].contains(ZERO));
        assert_eq!(
            log[3],
            "POST /v1.50/networks/v6net/disconnect {\"Container\":\"web1\",\"Force\":true}\n"
        );
        assert_eq!(
            log[4],
            "POST /v1.50/networks/v6net/disconnect {\"Container\":\"web1\",\"Force\":false}\n"
        );
        let (code, _, err) = run_line(
            &d.host(),
            &[
                "network",
                "connect",
                "--driver-opt",
                "novalue",
                "v6net",
                "web1",
            ],
            "",
        )
        .await;
        assert_eq!(
            (code, err.as_str()),
            (1, "invalid key/value pair format in driver options\n")
        );
        let (code, _, err) =
            run_line(&d.host(), &["network", "connect", "nonet", "web1"], "").await;
        assert_eq!(
            (code, err.as_str()),
            (1, "Error response from daemon: network nonet not found\n")
        );
        assert_eq!(d.api_log().len(), 6);
    }
}
