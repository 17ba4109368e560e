//! `vswitch-cni`'s parsers on arbitrary bytes: the stdin config (every command), the request
//! built from it, a prevResult and the result made from it (which must parse back), `CNI_ARGS`
//! and the /proc route tables CHECK reads. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::cni::api::Attachment;
use vswitch::cni::config::{parse_args, Command, Env, NetConf};
use vswitch::cni::inspect;
use vswitch::cni::result::CniResult;

const COMMANDS: &[&str] = &["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cmd = COMMANDS[sel as usize % COMMANDS.len()];
    let text = String::from_utf8_lossy(rest);
    let _ = parse_args(&text);
    let _ = inspect::parse_route_v4(&text);
    let _ = inspect::parse_route_v6(&text);
    let vars = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAME=web"),
    ];
    let Ok(env) = Env::from_vars(|k| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_string()))
    else {
        return;
    };
    let command = Command::parse(cmd).expect("known command");
    let Ok(conf) = NetConf::parse(rest, command) else {
        return;
    };
    let _ = conf.gc_valid();
    let _ = conf.ipam_type();
    let _ = conf.attach_request(&env, &[]);
    let prev = conf.prev_result.as_ref().and_then(|v| CniResult::from_value(v).ok());
    let att = Attachment {
        ifname: "eth0".into(),
        ipv4: Some("10.0.0.2/24".into()),
        gateway4: Some("10.0.0.1".into()),
        default_route: true,
        ..Default::default()
    };
    let r = CniResult::for_attachment(prev, &conf.cni_version, &att, "/run/netns/x", conf.dns.as_ref());
    let back: serde_json::Value = serde_json::from_slice(&r.to_json()).expect("result is JSON");
    let again = CniResult::from_value(&back).expect("result parses back");
    assert_eq!(again.interfaces.len(), r.interfaces.len());
    assert_eq!(again.ips.len(), r.ips.len());
});
