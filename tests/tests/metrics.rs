//! `GET /metrics`: the Prometheus text exposition parses (a strict parser here, and the
//! reference Python client's parser) and its counters follow the traffic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::time::Duration;
use vswitch_tests::*;

/// A sample's labels, in the order given.
type LabelList = Vec<(String, String)>;
/// Every sample: (metric name, labels) → value.
type Series = BTreeMap<(String, LabelList), f64>;

fn is_name(s: &str, colon: bool) -> bool {
    let mut cs = s.chars();
    let first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    cs.next().is_some_and(first) && cs.all(|c| first(c) || c.is_ascii_digit())
}

/// Parses `{a="x",b="y"}` (escapes `\\`, `\"`, `\n`); returns the labels and the rest.
fn labels(s: &str) -> Result<(LabelList, &str), String> {
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((Vec::new(), s));
    };
    let mut out = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let (k, r) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_name(k, false) {
            return Err(format!("bad label name {k:?}"));
        }
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the Prometheus text format 0.0.4: HELP/TYPE before a family's samples,
/// one TYPE per family, valid names, counters' samples named `<family>`, no duplicates,
/// every value a number.
fn parse_strict(text: &str) -> Result<Series, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Series::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if is_name(name, true) => {}
                (Some("TYPE"), Some(name), Some(t)) if is_name(name, true) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(err(format!("bad type {t}")));
                    }
                    if types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                }
                _ => return Err(err("bad comment".into())),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err("bad metric name".into()));
        }
        let (ls, rest) = labels(&line[name_end..]).map_err(err)?;
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value".into()))?;
        let value: f64 = value
            .split(' ')
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| err("value not a number".into()))?;
        let Some(t) = types.get(name) else {
            return Err(err("sample before its TYPE".into()));
        };
        if t == "counter" && !name.ends_with("_total") {
            return Err(err("counter not named *_total".into()));
        }
        let mut keys = HashSet::new();
        if !ls.iter().all(|(k, _)| keys.insert(k.clone())) {
            return Err(err("repeated label".into()));
        }
        if out.insert((name.to_string(), ls), value).is_some() {
            return Err(err("duplicate series".into()));
        }
    }
    Ok(out)
}

/// The reference parser (`prometheus_client.parser`, Debian's python3-prometheus-client):
/// every sample as `name labels-json value` lines.
fn parse_python(text: &str) -> Series {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        print(json.dumps([s.name, sorted(s.labels.items()), s.value]))
"#;
    let mut c = Command::new("/usr/bin/python3");
    c.args(["-c", SCRIPT]);
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped());
    c.stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "prometheus_client could not parse the exposition: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut out = Series::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = v[0].as_str().unwrap().to_string();
        let mut ls: Vec<(String, String)> = v[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        ls.sort();
        out.insert((name, ls), v[2].as_f64().unwrap());
    }
    out
}

/// Both parsers agree; returns the samples (labels sorted).
fn scrape(d: &Daemon) -> Series {
    let text = d.metrics_text();
    let strict = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let sorted: Series = strict
        .into_iter()
        .map(|((n, mut l), v)| {
            l.sort();
            ((n, l), v)
        })
        .collect();
    assert_eq!(sorted, parse_python(&text), "parsers disagree");
    sorted
}

fn get(s: &Series, name: &str, want: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    *s.get(&(name.to_string(), l))
        .unwrap_or_else(|| panic!("no sample {name}{want:?}"))
}

fn addr(d: &Daemon, name: &str) -> String {
    let a = d.ipv4_of(name, "eth0");
    a[0].split('/').next().unwrap().to_string()
}

#[test]
fn metrics_parse_and_follow_a_ping() {
    require_root();
    let d = Daemon::start_with("met", &["--metrics-addr", "127.0.0.1:9419"]);
    ok(d.vswitch(&["network", "create", "front"]));
    d.run_sandbox("m1", &["--net", "front"]);
    d.run_sandbox("m2", &["--net", "front"]);
    let b = addr(&d, "m2");
    fn port(c: &str) -> [(&str, &str); 3] {
        [
            ("network", "front"),
            ("container", c),
            ("interface", "eth0"),
        ]
    }

    let before = scrape(&d);
    let rx1 = get(&before, "vswitch_port_rx_frames_total", &port("m1"));
    let tx1 = get(&before, "vswitch_port_tx_frames_total", &port("m1"));
    let rx2 = get(&before, "vswitch_port_rx_frames_total", &port("m2"));
    let net_rx = get(
        &before,
        "vswitch_network_rx_frames_total",
        &[("network", "front")],
    );
    let o = d.in_sandbox("m1", &["ping", "-c", "10", "-i", "0.2", "-W", "2", &b]);
    assert!(o.status.success(), "ping: {}", stdout(&o));

    let after = scrape(&d);
    let dm = |n: &str, c: &str, b: f64| get(&after, n, &port(c)) - b;
    assert!(
        dm("vswitch_port_rx_frames_total", "m1", rx1) >= 10.0,
        "echo requests in"
    );
    assert!(
        dm("vswitch_port_tx_frames_total", "m1", tx1) >= 10.0,
        "echo replies out"
    );
    assert!(
        dm("vswitch_port_rx_frames_total", "m2", rx2) >= 10.0,
        "echo replies in"
    );
    assert!(get(&after, "vswitch_port_rx_bytes_total", &port("m1")) >= 10.0 * 98.0);
    let net_rx_after = get(
        &after,
        "vswitch_network_rx_frames_total",
        &[("network", "front")],
    );
    assert!(net_rx_after - net_rx >= 20.0);
    assert!(get(&after, "vswitch_fdb_entries", &[("network", "front")]) >= 2.0);
    assert_eq!(
        get(
            &after,
            "vswitch_drops_total",
            &[("network", "front"), ("reason", "spoofed_ip")]
        ),
        0.0
    );
    // The network masquerades: its NAT engine is there too, with its flow gauges.
    get(
        &after,
        "vswitch_nat_flows",
        &[("network", "front"), ("protocol", "icmp")],
    );

    // DNS: a lookup of m2 from m1 is a query answered by the embedded resolver.
    let q0 = get(&after, "vswitch_dns_queries_total", &[("container", "m1")]);
    let a0 = get(&after, "vswitch_dns_answers_total", &[("container", "m1")]);
    ok(d.vswitch(&["exec", "m1", "--", "getent", "ahostsv4", "m2"]));
    let s = scrape(&d);
    assert!(get(&s, "vswitch_dns_queries_total", &[("container", "m1")]) > q0);
    assert!(get(&s, "vswitch_dns_answers_total", &[("container", "m1")]) > a0);

    // The same exposition over plain HTTP with --metrics-addr (in the daemon's namespace).
    let o = d.ns.exec(&[
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "10",
        "http://127.0.0.1:9419/metrics",
    ]);
    assert!(o.status.success(), "metrics-addr: {}", stderr(&o));
    let tcp = parse_strict(&stdout(&o)).unwrap();
    assert!(tcp.keys().any(|(n, _)| n == "vswitch_port_rx_frames_total"));
    let r = d.ns.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:9419/other",
    ]);
    assert_eq!(stdout(&r), "404");
    // Bounded: the sandboxes' counters disappear with them.
    ok(d.vswitch(&["rm", "-f", "m1"]));
    assert!(wait_until(Duration::from_secs(5), || {
        !scrape(&d)
            .keys()
            .any(|(_, l)| l.contains(&("container".into(), "m1".into())))
    }));
}

#[test]
fn strict_parser_refuses_bad_text() {
    for bad in [
        "x_total 1\n",
        "# TYPE x_total counter\nx_total{a=\"1} 1\n",
        "# TYPE x_total counter\nx_total one\n",
        "# TYPE x counter\nx 1\n",
        "# TYPE x_total counter\nx_total 1\nx_total 2\n",
        "# TYPE 1x gauge\n",
    ] {
        assert!(parse_strict(bad).is_err(), "{bad:?}");
    }
    let ok = parse_strict("# HELP g A g.\n# TYPE g gauge\ng{a=\"q\\\"\"} 3\n").unwrap();
    assert_eq!(ok.values().next(), Some(&3.0));
}
