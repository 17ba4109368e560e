//! The switch as a state machine: random networks, random frames (structured and raw), random
//! time steps, ports added and removed. Invariants: nothing is ever sent back out of the port
//! it came from (ARP replies, built by the switch, go out of the asker's port), every output
//! port exists, the FDB never exceeds its cap, one verdict per frame, replies are ARP replies,
//! remote endpoints never take a local port's MAC and never receive floods in cluster mode.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vswitch::switch::{
    Decisions, FrameRef, PortConfig, PortId, PortKind, Switch, SwitchConfig, Verdict,
};
use vswitch::wire::{
    ArpOp, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Repr,
    Ipv6Repr, MacAddr, VlanTag,
};

/// Most ports a fuzzed network gets.
const MAX_FUZZ_PORTS: usize = 8;
/// Most frames in one batch.
const MAX_BATCH: usize = 16;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct PortSpec {
    kind: u8,
    id: u8,
    with_mac: bool,
    with_v6: bool,
}

#[derive(Arbitrary, Debug)]
enum FrameSpec {
    Raw(Vec<u8>),
    Arp {
        src: u8,
        dst: u8,
        request: bool,
        sha: u8,
        spa: u8,
        tpa: u8,
        vlan: Option<u16>,
    },
    Ipv4 {
        src: u8,
        dst: u8,
        sip: u8,
        dip: u8,
        tail: Vec<u8>,
    },
    Ipv6 {
        src: u8,
        dst: u8,
        sip: u8,
        dip: u8,
        tail: Vec<u8>,
    },
    Other {
        src: u8,
        dst: u8,
        ethertype: u16,
        tail: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Frame {
        port: u8,
        frame: FrameSpec,
    },
    Batch(Vec<(u8, FrameSpec)>),
    Advance {
        ms: u32,
    },
    Remove {
        port: u8,
    },
    Add(PortSpec),
    Expire,
    Policy {
        icc: bool,
        internal: bool,
        anti_spoofing: bool,
        flood_to_tunnel: bool,
    },
    Remote {
        port: u8,
        mac: u8,
        ips: Vec<u8>,
    },
    RemoveRemote {
        mac: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    icc: bool,
    internal: bool,
    anti_spoofing: bool,
    cap: u8,
    ports: Vec<PortSpec>,
    ops: Vec<Op>,
}

fn mac(b: u8) -> MacAddr {
    match b % 16 {
        0 => MacAddr::BROADCAST,
        1 => MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        2 => MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        3 => MacAddr::ZERO,
        4 => MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
        _ => MacAddr([0x02, 0x42, 10, 0, 0, b % 16]),
    }
}

fn v4(b: u8) -> Ipv4Addr {
    match b % 8 {
        0 => Ipv4Addr::new(8, 8, 8, b),
        1 => Ipv4Addr::UNSPECIFIED,
        2 => Ipv4Addr::BROADCAST,
        _ => Ipv4Addr::new(10, 0, 0, b % 16),
    }
}

fn v6(b: u8) -> Ipv6Addr {
    match b % 6 {
        0 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(b)),
        1 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(b % 16)),
        2 => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        _ => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(b % 16)),
    }
}

fn port_config(p: PortSpec) -> PortConfig {
    let kind = match p.kind % 3 {
        0 => PortKind::Container,
        1 => PortKind::Host,
        _ => PortKind::Tunnel,
    };
    let mut c = PortConfig::new(kind);
    let n = p.id % 16;
    if p.with_mac || kind == PortKind::Container {
        c.mac = Some(MacAddr([0x02, 0x42, 10, 0, 0, n]));
    }
    if kind != PortKind::Tunnel && n >= 3 {
        c.ipv4.push(Ipv4Addr::new(10, 0, 0, n));
        if p.with_v6 {
            c.ipv6
                .push(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)));
        }
    }
    c
}

fn eth(src: u8, dst: u8, ethertype: EtherType, vlan: Option<u16>, f: &mut Vec<u8>) {
    let r = EthernetRepr {
        src: mac(src),
        dst: mac(dst),
        vlan: vlan.map(|tci| VlanTag { tci }),
        ethertype,
    };
    let mut h = [0u8; 18];
    let n = r.emit(&mut h).expect("18 bytes");
    f.extend_from_slice(&h[..n]);
}

fn build(spec: &FrameSpec) -> Vec<u8> {
    let mut f = Vec::new();
    match spec {
        FrameSpec::Raw(b) => f.extend_from_slice(b),
        FrameSpec::Arp {
            src,
            dst,
            request,
            sha,
            spa,
            tpa,
            vlan,
        } => {
            let a = ArpRepr {
                op: if *request {
                    ArpOp::REQUEST
                } else {
                    ArpOp::REPLY
                },
                sha: mac(*sha),
                spa: v4(*spa),
                tha: MacAddr::ZERO,
                tpa: v4(*tpa),
            };
            let mut b = [0u8; 64];
            if let Ok(n) = a.emit_frame(
                mac(*src),
                mac(*dst),
                vlan.map(|tci| VlanTag { tci }),
                &mut b,
            ) {
                f.extend_from_slice(&b[..n]);
            }
        }
        FrameSpec::Ipv4 {
            src,
            dst,
            sip,
            dip,
            tail,
        } => {
            eth(*src, *dst, EtherType::IPV4, None, &mut f);
            let r = Ipv4Repr {
                src: v4(*sip),
                dst: v4(*dip),
                protocol: IpProtocol::UDP,
                payload_len: tail.len(),
                ttl: 64,
            };
            let mut h = [0u8; 20];
            if r.emit(&mut h).is_ok() {
                f.extend_from_slice(&h);
                f.extend_from_slice(tail);
            }
        }
        FrameSpec::Ipv6 {
            src,
            dst,
            sip,
            dip,
            tail,
        } => {
            eth(*src, *dst, EtherType::IPV6, None, &mut f);
            let r = Ipv6Repr {
                src: v6(*sip),
                dst: v6(*dip),
                next_header: IpProtocol::UDP,
                payload_len: tail.len(),
                hop_limit: 64,
            };
            let mut h = [0u8; 40];
            if r.emit(&mut h).is_ok() {
                f.extend_from_slice(&h);
                f.extend_from_slice(tail);
            }
        }
        FrameSpec::Other {
            src,
            dst,
            ethertype,
            tail,
        } => {
            eth(*src, *dst, EtherType(*ethertype), None, &mut f);
            f.extend_from_slice(tail);
        }
    }
    f
}

fn check(sw: &Switch, cap: usize, batch: &[(PortId, Vec<u8>)], out: &Decisions) {
    assert!(sw.fdb().len() <= cap, "fdb over its cap");
    assert_eq!(out.verdicts().len(), batch.len());
    let flooded = |i: u32| matches!(out.verdicts()[i as usize], Verdict::Flood { .. });
    for tx in out.tx() {
        assert!(sw.port(tx.port).is_some(), "output to a missing port");
        let to_tunnel = sw.port(tx.port).is_some_and(|p| p.kind == PortKind::Tunnel);
        if let FrameRef::Input(i) = tx.frame {
            assert!(
                !(to_tunnel && flooded(i) && !sw.config().flood_to_tunnel),
                "flooded to a tunnel in cluster mode"
            );
        }
        match tx.frame {
            FrameRef::Input(i) => {
                let (in_port, _) = &batch[i as usize];
                assert_ne!(tx.port, *in_port, "sent back out of its input port");
            }
            FrameRef::Reply(r) => {
                let bytes = out.reply(r);
                let e = EthernetFrame::new_checked(bytes).expect("reply: ethernet");
                let a = ArpPacket::new_checked(e.payload()).expect("reply: arp");
                assert_eq!(a.operation(), ArpOp::REPLY);
                assert_eq!(e.src_addr(), a.sha());
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let cap = usize::from(input.cap % 16) + 1;
    let mut sw = Switch::new(SwitchConfig {
        subnets: vec![
            "10.0.0.0/24".parse().expect("net"),
            "fd00::/64".parse().expect("net"),
        ],
        enable_icc: input.icc,
        internal: input.internal,
        anti_spoofing: input.anti_spoofing,
        fdb_cap: cap,
        ..SwitchConfig::default()
    });
    for p in input.ports.iter().take(MAX_FUZZ_PORTS) {
        let _ = sw.add_port(port_config(*p));
    }
    let mut out = Decisions::default();
    let mut now = Duration::ZERO;
    let mut rx = 0u64;
    for op in &input.ops {
        match op {
            Op::Frame { port, frame } => {
                let batch = vec![(PortId(u16::from(*port % 10)), build(frame))];
                out.clear();
                sw.process(batch[0].0, &batch[0].1, now, &mut out);
                rx += 1;
                check(&sw, cap, &batch, &out);
            }
            Op::Batch(frames) => {
                let batch: Vec<(PortId, Vec<u8>)> = frames
                    .iter()
                    .take(MAX_BATCH)
                    .map(|(p, f)| (PortId(u16::from(*p % 10)), build(f)))
                    .collect();
                sw.process_batch(batch.iter().map(|(p, f)| (*p, &f[..])), now, &mut out);
                rx += batch.len() as u64;
                check(&sw, cap, &batch, &out);
            }
            Op::Advance { ms } => now += Duration::from_millis(u64::from(*ms)),
            Op::Remove { port } => {
                let id = PortId(u16::from(*port % 10));
                if sw.remove_port(id).is_ok() {
                    assert!(sw.fdb().entries(u64::MAX / 2).all(|(_, p)| p != id));
                }
            }
            Op::Add(p) => {
                if sw.port_count() < MAX_FUZZ_PORTS {
                    let _ = sw.add_port(port_config(*p));
                }
            }
            Op::Expire => {
                sw.expire(now);
            }
            Op::Policy {
                icc,
                internal,
                anti_spoofing,
                flood_to_tunnel,
            } => {
                sw.set_enable_icc(*icc);
                sw.set_internal(*internal);
                sw.set_anti_spoofing(*anti_spoofing);
                sw.set_flood_to_tunnel(*flood_to_tunnel);
            }
            Op::Remote { port, mac: m, ips } => {
                let id = PortId(u16::from(*port % 10));
                let ips: Vec<IpAddr> = ips.iter().take(4).map(|&b| IpAddr::V4(v4(b))).collect();
                if sw.set_remote_endpoint(id, mac(*m), &ips).is_ok() {
                    assert!(sw.ports().all(|(_, p)| p.mac != Some(mac(*m))));
                    assert_eq!(sw.fdb().static_port(&mac(*m)), Some(id));
                }
            }
            Op::RemoveRemote { mac: m } => {
                let known = sw.remote_endpoint(mac(*m)).is_some();
                assert_eq!(sw.remove_remote_endpoint(mac(*m)), known);
                assert_eq!(sw.fdb().static_port(&mac(*m)), None);
            }
        }
    }
    assert_eq!(sw.counters().rx_frames, rx);
});
