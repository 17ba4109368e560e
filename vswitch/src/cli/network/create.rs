//! `network create`: docker's flags, client-side IPAM validation and request body.

use std::collections::BTreeMap;
use std::net::IpAddr;

use clap::Args;

use crate::cli::client::{first_json_value, version_less, Client};
use crate::cli::gojson::{self, ObjectWriter};
use crate::cli::opts::{
    flatten, labels_to_map, parse_csv, parse_go_bool, parse_key_value, parse_label, to_map,
    CsvList, KeyValue,
};
use crate::cli::{CliError, Io};

/// `docker network create` flags.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge", value_name = "string")]
    pub driver: String,

    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map", value_parser = parse_key_value)]
    pub opt: Vec<KeyValue>,

    /// Set metadata on a network
    #[arg(long, value_name = "list", value_parser = parse_label)]
    pub label: Vec<String>,

    /// Restrict external access to the network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub internal: bool,

    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_name = "bool", value_parser = parse_go_bool)]
    pub ipv4: Option<bool>,

    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_name = "bool", value_parser = parse_go_bool)]
    pub ipv6: Option<bool>,

    /// Enable manual container attachment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub attachable: bool,

    /// Create swarm routing-mesh network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub ingress: bool,

    /// Control the network's scope
    #[arg(
        long,
        default_value = "",
        value_name = "string",
        hide_default_value = true
    )]
    pub scope: String,

    /// Create a configuration only network
    #[arg(long = "config-only", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub config_only: bool,

    /// The network from which to copy the configuration
    #[arg(
        long = "config-from",
        default_value = "",
        value_name = "string",
        hide_default_value = true
    )]
    pub config_from: String,

    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default", value_name = "string")]
    pub ipam_driver: String,

    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings", value_parser = parse_csv)]
    pub subnet: Vec<CsvList>,

    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings", value_parser = parse_csv)]
    pub ip_range: Vec<CsvList>,

    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings", value_parser = parse_csv)]
    pub gateway: Vec<CsvList>,

    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map", value_parser = parse_key_value)]
    pub aux_address: Vec<KeyValue>,

    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "map", value_parser = parse_key_value)]
    pub ipam_opt: Vec<KeyValue>,

    /// Name of the network
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// One `network.IPAMConfig` of the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpamConfig {
    pub subnet: String,
    pub ip_range: String,
    pub gateway: String,
    pub aux: BTreeMap<String, String>,
}

impl IpamConfig {
    fn to_json(&self) -> String {
        let mut o = ObjectWriter::new();
        if !self.subnet.is_empty() {
            o.str("Subnet", &self.subnet);
        }
        if !self.ip_range.is_empty() {
            o.str("IPRange", &self.ip_range);
        }
        if !self.gateway.is_empty() {
            o.str("Gateway", &self.gateway);
        }
        if !self.aux.is_empty() {
            o.raw("AuxiliaryAddresses", &gojson::string_map(&self.aux));
        }
        o.finish()
    }
}

/// A parsed CIDR as Go's `net.ParseCIDR` returns it: the address as written (16 bytes,
/// Go's `IP`) and the masked network with its mask (4 or 16 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoCidr {
    pub ip: [u8; 16],
    pub net: Vec<u8>,
    pub mask: Vec<u8>,
}

fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Go's `IP.To4`.
fn to4(ip: &[u8]) -> Option<Vec<u8>> {
    match ip.len() {
        4 => Some(ip.to_vec()),
        16 if ip[..10].iter().all(|&b| b == 0) && ip[10] == 0xff && ip[11] == 0xff => {
            Some(ip[12..].to_vec())
        }
        _ => None,
    }
}

/// Go's `net.ParseCIDR` (error: `invalid CIDR address: <s>`).
pub fn parse_cidr(s: &str) -> Result<GoCidr, String> {
    let err = || format!("invalid CIDR address: {s}");
    let (addr, bits) = s.split_once('/').ok_or_else(err)?;
    let ip: IpAddr = addr.parse().map_err(|_| err())?;
    let len = if ip.is_ipv4() { 32 } else { 128 };
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) || bits.len() > 3 {
        return Err(err());
    }
    let n: usize = bits.parse().map_err(|_| err())?;
    if n > len {
        return Err(err());
    }
    let mut mask = vec![0u8; len / 8];
    for (i, m) in mask.iter_mut().enumerate() {
        let b = n.saturating_sub(i * 8).min(8);
        *m = if b == 0 { 0 } else { 0xffu8 << (8 - b) };
    }
    let full = ip16(ip);
    // IP.Mask: a 4-byte mask applied to a v4-in-v6 address yields 4 bytes.
    let net: Vec<u8> = if mask.len() == 4 {
        full[12..].iter().zip(&mask).map(|(a, m)| a & m).collect()
    } else {
        full.iter().zip(&mask).map(|(a, m)| a & m).collect()
    };
    Ok(GoCidr {
        ip: full,
        net,
        mask,
    })
}

/// Go's `IPNet.Contains`.
pub fn cidr_contains(c: &GoCidr, ip: &[u8]) -> bool {
    let nn = match to4(&c.net) {
        Some(v) => v,
        None if c.net.len() == 16 => c.net.clone(),
        None => return false,
    };
    let mut m = c.mask.clone();
    if m.len() == 4 && nn.len() != 4 {
        return false;
    }
    if m.len() == 16 && nn.len() == 4 {
        m = m[12..].to_vec();
    }
    let ip = to4(ip).unwrap_or_else(|| ip.to_vec());
    if ip.len() != nn.len() {
        return false;
    }
    (0..ip.len()).all(|i| nn[i] & m[i] == ip[i] & m[i])
}

/// docker's `subnetMatches(subnet, data)`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let s = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip: Option<[u8; 16]> = if data.contains('/') {
        Some(parse_cidr(data)?.ip)
    } else {
        data.parse::<IpAddr>().ok().map(ip16)
    };
    Ok(ip.is_some_and(|ip| cidr_contains(&s, &ip)))
}

/// docker's `createIPAMConfig`: groups ranges, gateways and aux addresses under their
/// subnets (by containment) with docker's error messages. Config order: subnets as given
/// (docker's order is random).
pub fn ipam_configs(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &BTreeMap<String, String>,
) -> Result<Vec<IpamConfig>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut data: Vec<IpamConfig> = Vec::new();
    for s in subnets {
        for k in &data {
            let ok1 = subnet_matches(s, &k.subnet)?;
            let ok2 = subnet_matches(&k.subnet, s)?;
            if ok1 || ok2 {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        data.push(IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        });
    }
    let index = |data: &Vec<IpamConfig>, s: &str| data.iter().position(|d| d.subnet == s);
    for r in ranges {
        let mut matched = false;
        for s in subnets {
            parse_cidr(r)?;
            if !subnet_matches(s, r)? {
                continue;
            }
            let i = index(&data, s).expect("subnet recorded");
            if !data[i].ip_range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({s})",
                    data[i].ip_range
                ));
            }
            data[i].ip_range = r.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut matched = false;
        for s in subnets {
            if !subnet_matches(s, g)? {
                continue;
            }
            let i = index(&data, s).expect("subnet recorded");
            if !data[i].gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({s})",
                    data[i].gateway
                ));
            }
            data[i].gateway = g.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, a) in aux {
        let mut matched = false;
        for s in subnets {
            if !subnet_matches(s, a)? {
                continue;
            }
            let i = index(&data, s).expect("subnet recorded");
            data[i].aux.insert(key.clone(), a.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {a}"));
        }
    }
    Ok(data)
}

/// The `POST /networks/create` body (`network.CreateRequest`, Go encoder output with
/// the trailing newline). `api_version` below 1.44 adds `"CheckDuplicate":true`.
pub fn create_body(args: &CreateArgs, api_version: &str) -> Result<String, String> {
    let subnets = flatten(&args.subnet);
    let configs = ipam_configs(
        &subnets,
        &flatten(&args.ip_range),
        &flatten(&args.gateway),
        &to_map(&args.aux_address),
    )?;
    let mut ipam = ObjectWriter::new();
    ipam.str("Driver", &args.ipam_driver)
        .raw("Options", &gojson::string_map(&to_map(&args.ipam_opt)))
        .raw(
            "Config",
            &format!(
                "[{}]",
                configs
                    .iter()
                    .map(IpamConfig::to_json)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
    let mut o = ObjectWriter::new();
    o.str("Driver", &args.driver).str("Scope", &args.scope);
    if let Some(v4) = args.ipv4 {
        o.bool("EnableIPv4", v4);
    }
    if let Some(v6) = args.ipv6 {
        o.bool("EnableIPv6", v6);
    }
    o.raw("IPAM", &ipam.finish())
        .bool("Internal", args.internal)
        .bool("Attachable", args.attachable)
        .bool("Ingress", args.ingress)
        .bool("ConfigOnly", args.config_only);
    if args.config_from.is_empty() {
        o.raw("ConfigFrom", "null");
    } else {
        let mut c = ObjectWriter::new();
        c.str("Network", &args.config_from);
        o.raw("ConfigFrom", &c.finish());
    }
    o.raw("Options", &gojson::string_map(&to_map(&args.opt)))
        .raw("Labels", &gojson::string_map(&labels_to_map(&args.label)));
    o.str("Name", &args.name);
    if version_less(api_version, "1.44") {
        o.bool("CheckDuplicate", true);
    }
    let mut body = o.finish();
    body.push('\n');
    Ok(body)
}

pub async fn run(client: &mut Client, args: &CreateArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    // Validate before talking to the daemon (docker pings first; the outcome is the same).
    create_body(args, client.api_version()).map_err(CliError::msg)?;
    // The body depends on the negotiated version: negotiate, then build it for real.
    client.negotiate().await?;
    let body = create_body(args, client.api_version()).map_err(CliError::msg)?;
    let resp = client.post_json("/networks/create", body).await?;
    let v = first_json_value(&resp.body).map_err(CliError::msg)?;
    let field = |name: &str| -> String {
        v.as_object()
            .and_then(|o| {
                o.get(name).or_else(|| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, x)| x)
                })
            })
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    io.print(&format!("{}\n", field("Id")));
    let warning = field("Warning");
    for line in warning.lines().filter(|l| !l.trim().is_empty()) {
        io.eprintln(&format!("WARNING: {line}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testutil::FakeDaemon;
    use crate::cli::{run_line, Cli};
    use clap::Parser;

    fn body_of(argv: &[&str]) -> Result<String, String> {
        let mut full = vec!["vswitch", "network", "create"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).map_err(|e| e.to_string())?;
        let crate::cli::Command::Network(super::super::NetworkCmd::Create(a)) = cli.command else {
            panic!("not create")
        };
        create_body(&a, "1.50")
    }

    #[test]
    fn bodies_match_docker() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["mynetwork"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"mynetwork"}"#,
            ),
            (
                &[
                    "--driver",
                    "bridge",
                    "--subnet=10.15.20.0/24",
                    "--gateway=10.15.20.1",
                    "--aux-address",
                    "1=10.15.20.2",
                    "--aux-address",
                    "2=10.15.20.3",
                    "--opt",
                    "com.docker.network.bridge.host_binding_ipv4=10.10.10.101",
                    "--opt",
                    "com.docker.network.bridge.name=linuxbridge1",
                    "testbridge1",
                ],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.15.20.0/24","Gateway":"10.15.20.1","AuxiliaryAddresses":{"1":"10.15.20.2","2":"10.15.20.3"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.host_binding_ipv4":"10.10.10.101","com.docker.network.bridge.name":"linuxbridge1"},"Labels":{},"Name":"testbridge1"}"#,
            ),
            (
                &[
                    "--subnet=192.168.50.0/24",
                    "--ip-range=192.168.50.128/25",
                    "testbridge2",
                ],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"192.168.50.0/24","IPRange":"192.168.50.128/25"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"testbridge2"}"#,
            ),
            (
                &["-d", "overlay", "--subnet", "172.16.16.0/24", "myoverlay"],
                r#"{"Driver":"overlay","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"172.16.16.0/24"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"myoverlay"}"#,
            ),
            (
                &[
                    "--internal",
                    "-o",
                    "com.docker.network.bridge.name=mybridge1",
                    "myinternalbridge",
                ],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":true,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.name":"mybridge1"},"Labels":{},"Name":"myinternalbridge"}"#,
            ),
            (
                &["--ipv6", "--subnet", "fd00:1::/64", "v6net"],
                r#"{"Driver":"bridge","Scope":"","EnableIPv6":true,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"fd00:1::/64"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"v6net"}"#,
            ),
            (
                &["--label", "a=b", "lbl"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{"a":"b"},"Name":"lbl"}"#,
            ),
            (
                &["--label", "bad", "x3"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{"bad":""},"Name":"x3"}"#,
            ),
            (
                &[
                    "--ipv4=false",
                    "--attachable",
                    "--scope",
                    "local",
                    "--ipam-opt",
                    "foo=bar",
                    "--config-only",
                    "cfgonly",
                ],
                r#"{"Driver":"bridge","Scope":"local","EnableIPv4":false,"IPAM":{"Driver":"default","Options":{"foo":"bar"},"Config":[]},"Internal":false,"Attachable":true,"Ingress":false,"ConfigOnly":true,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"cfgonly"}"#,
            ),
            (
                &["--config-from", "cfgonly", "fromcfg"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":{"Network":"cfgonly"},"Options":{},"Labels":{},"Name":"fromcfg"}"#,
            ),
            (
                &[
                    "--label", " ab=c", "--label", "k=v=w", "-o", "novalue", "-o", "a<b=c&d", "x",
                ],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"a\u003cb":"c\u0026d","novalue":""},"Labels":{" ab":"c","k":"v=w"},"Name":"x"}"#,
            ),
            (
                &["--ipv6=false", "--ipv4", "--internal=true", "x2"],
                r#"{"Driver":"bridge","Scope":"","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":true,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"x2"}"#,
            ),
            (
                &["--subnet", "10.0.0.0/16,\"10.1.0.0/16\"", "y"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.0.0.0/16"},{"Subnet":"10.1.0.0/16"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"y"}"#,
            ),
            (
                &["--subnet", "10.0.0.0/16", "--gateway", "10.0.0.1/8", "x"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.0.0.0/16","Gateway":"10.0.0.1/8"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"x"}"#,
            ),
            (
                &["--subnet", "bogus", "x"],
                r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"bogus"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"x"}"#,
            ),
        ];
        for (argv, want) in cases {
            assert_eq!(body_of(argv).unwrap(), format!("{want}\n"), "{argv:?}");
        }
    }

    #[test]
    fn validation_messages_match_docker() {
        let cases: &[(&[&str], &str)] = &[
            (&["--subnet", "10.0.0.0/24", "--subnet", "10.0.0.0/16", "x"], "multiple overlapping subnet configuration is not supported"),
            (&["--subnet", "10.0.0.0/16", "--subnet", "10.0.0.0/16", "x"], "multiple overlapping subnet configuration is not supported"),
            (&["--subnet", "bogus", "--subnet", "10.0.0.0/16", "x"], "invalid subnet: invalid CIDR address: bogus"),
            (&["--subnet", "10.0.0.0/16", "--subnet", "bogus", "x"], "invalid subnet: invalid CIDR address: bogus"),
            (&["--subnet", "bogus", "--gateway", "10.0.0.1", "x"], "invalid subnet: invalid CIDR address: bogus"),
            (&["--subnet", "10.0.0.0/16", "--ip-range", "bogus", "x"], "invalid CIDR address: bogus"),
            (&["--subnet", "10.0.0.0/16", "--ip-range", "10.0.0.0/24", "--ip-range", "10.0.1.0/24", "--gateway", "10.0.0.1", "x"], "every ip-range or gateway must have a corresponding subnet"),
            (&["--gateway", "10.1.0.1", "x"], "every ip-range or gateway must have a corresponding subnet"),
            (&["--subnet", "10.0.0.0/16,10.1.0.0/16", "--ip-range", "10.0.0.0/24,10.0.1.0/24", "x"], "cannot configure multiple ranges (10.0.1.0/24, 10.0.0.0/24) on the same subnet (10.0.0.0/16)"),
            (&["--subnet", "10.0.0.0/16,10.1.0.0/16", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "x"], "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/16)"),
            (&["--subnet", "10.0.0.0/16", "--gateway", "bogus", "x"], "no matching subnet for gateway bogus"),
            (&["--subnet", "10.0.0.0/16", "--gateway", "10.1.0.1", "x"], "no matching subnet for gateway 10.1.0.1"),
            (&["--subnet", "10.0.0.0/16", "--ip-range", "10.9.0.0/24", "x"], "no matching subnet for range 10.9.0.0/24"),
            (&["--subnet", "10.0.0.0/16", "--aux-address", "a=bogus", "x"], "no matching subnet for aux-address bogus"),
            (&["--subnet", "10.0.0.0/16", "--aux-address", "a=10.9.0.3", "x"], "no matching subnet for aux-address 10.9.0.3"),
            (&["--aux-address", "a=10.0.0.1", "x"], "no matching subnet for aux-address 10.0.0.1"),
            (&["--subnet", "fd00::/64", "--gateway", "10.0.0.1", "x"], "no matching subnet for gateway 10.0.0.1"),
        ];
        for (argv, want) in cases {
            assert_eq!(body_of(argv).unwrap_err(), *want, "{argv:?}");
        }
        assert!(body_of(&[
            "--subnet",
            "fd00::/64",
            "--gateway",
            "fd00::1",
            "--subnet",
            "10.0.0.0/8",
            "--gateway",
            "10.1.1.1",
            "x"
        ])
        .is_ok());
    }

    #[test]
    fn flag_parsing_errors() {
        let e = body_of(&["--label", "=x", "x"]).unwrap_err();
        assert!(e.contains("invalid label '=x': empty name"), "{e}");
        let e = body_of(&["--subnet", "a\"b", "x"]).unwrap_err();
        assert!(e.contains("bare \" in non-quoted-field"), "{e}");
        assert!(body_of(&["a", "b"]).is_err());
        assert!(body_of(&[]).is_err());
    }

    #[test]
    fn cidr_helper() {
        let c = parse_cidr("10.0.0.1/24").unwrap();
        assert_eq!(c.net, vec![10, 0, 0, 0]);
        assert!(cidr_contains(&c, &ip16("10.0.0.200".parse().unwrap())));
        assert!(!cidr_contains(&c, &ip16("10.0.1.1".parse().unwrap())));
        assert!(!cidr_contains(&c, &ip16("fd00::1".parse().unwrap())));
        let c = parse_cidr("fd00:1::/64").unwrap();
        assert!(cidr_contains(&c, &ip16("fd00:1::5".parse().unwrap())));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("010.0.0.0/8").is_err());
    }

    #[tokio::test]
    async fn create_prints_id_and_warning() {
        let d = FakeDaemon::start(|_| {
            (
                201,
                "application/json",
                "{\"Id\":\"1980f958fec7\",\"Warning\":\"option \\\"com.docker.network.bridge.nmae\\\" is not known\"}\n".into(),
            )
        })
        .await;
        let (code, out, err) = run_line(&d.host(), &["network", "create", "n1"], "").await;
        assert_eq!(code, 0);
        assert_eq!(out, "1980f958fec7\n");
        assert_eq!(
            err,
            "WARNING: option \"com.docker.network.bridge.nmae\" is not known\n"
        );
        let log = d.api_log();
        assert_eq!(log.len(), 1);
        assert!(log[0].starts_with("POST /v1.50/networks/create {\"Driver\":\"bridge\""));
        let req = d.requests().into_iter().last().unwrap();
        assert_eq!(
            req.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(req.body.ends_with("\"Name\":\"n1\"}\n"));
        let (code, out, err) = run_line(
            &d.host(),
            &[
                "network",
                "create",
                "--subnet",
                "10.0.0.0/8",
                "--gateway",
                "11.0.0.1",
                "n2",
            ],
            "",
        )
        .await;
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, "no matching subnet for gateway 11.0.0.1\n");
        assert_eq!(d.api_log().len(), 1);
    }

    #[tokio::test]
    async fn create_daemon_errors() {
        let d = FakeDaemon::start(|r| {
            if r.body.contains("\"Name\":\"empty\"") {
                (201, "application/json", String::new())
            } else {
                (
                    409,
                    "application/json",
                    "{\"message\":\"network with name dup already exists\"}".into(),
                )
            }
        })
        .await;
        let (code, _, err) = run_line(&d.host(), &["network", "create", "dup"], "").await;
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error response from daemon: network with name dup already exists\n"
        );
        let (code, _, err) = run_line(&d.host(), &["network", "create", "empty"], "").await;
        assert_eq!((code, err.as_str()), (1, "EOF\n"));
    }
}
