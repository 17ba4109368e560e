//! Cost of the switch's decisions and of the software offload fallbacks.
//!
//! `cargo bench -p vswitch --bench switch -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vswitch::switch::{Decisions, PortConfig, PortId, Switch, SwitchConfig};
use vswitch::wire::vnet_hdr::{self, complete_checksum, GsoType, VnetHdrRepr};
use vswitch::wire::{
    tcp, ArpRepr, EtherType, EthernetRepr, IpProtocol, Ipv4Repr, MacAddr, PseudoHeader, TcpPacket,
    UdpPacket,
};

const BATCH: usize = 32;
const CONTAINERS: u8 = 16;

fn mac(n: u8) -> MacAddr {
    MacAddr::from_ipv4(Ipv4Addr::new(172, 18, 0, n))
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, n)
}

/// A 64-byte UDP frame (14 + 20 + 8 + 22).
fn udp_frame(src: u8, dst_mac: MacAddr, dst: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    EthernetRepr {
        src: mac(src),
        dst: dst_mac,
        vlan: None,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .expect("fits");
    Ipv4Repr {
        src: ip(src),
        dst: ip(dst),
        protocol: IpProtocol::UDP,
        payload_len: 30,
        ttl: 64,
    }
    .emit(&mut f[14..])
    .expect("fits");
    f[34..36].copy_from_slice(&1000u16.to_be_bytes());
    f[36..38].copy_from_slice(&2000u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    let ph = PseudoHeader::V4 {
        src: ip(src),
        dst: ip(dst),
    };
    UdpPacket::new_checked(&mut f[34..])
        .expect("udp")
        .fill_checksum(&ph);
    f
}

fn network() -> (Switch, Vec<PortId>) {
    let mut sw = Switch::new(SwitchConfig {
        subnets: vec!["172.18.0.0/16".parse().expect("net")],
        ..SwitchConfig::default()
    });
    let mut ports = vec![sw
        .add_port(PortConfig::host(MacAddr([2, 0, 0, 0, 0, 1])).with_ipv4(ip(1)))
        .expect("host")];
    for n in 2..2 + CONTAINERS {
        ports.push(
            sw.add_port(PortConfig::container(mac(n)).with_ipv4(ip(n)))
                .expect("port"),
        );
    }
    // Learn every MAC.
    let mut out = Decisions::default();
    for (i, p) in ports.iter().enumerate().skip(1) {
        let n = i as u8 + 1;
        sw.process(
            *p,
            &udp_frame(n, MacAddr::BROADCAST, 1),
            Duration::ZERO,
            &mut out,
        );
    }
    (sw, ports)
}

fn bench_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cases: [(&str, Vec<u8>); 3] = [
        ("unicast_64B", udp_frame(2, mac(3), 3)),
        ("flood_64B_17_ports", udp_frame(2, MacAddr::BROADCAST, 3)),
        ("arp_suppressed", {
            let mut b = [0u8; 64];
            let n = ArpRepr::request(mac(2), ip(2), ip(3))
                .emit_frame(mac(2), MacAddr::BROADCAST, None, &mut b)
                .expect("fits");
            b[..n].to_vec()
        }),
    ];
    for (name, frame) in cases {
        let (mut sw, ports) = network();
        let mut out = Decisions::with_capacity(BATCH, BATCH * 32);
        let mut t = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 1;
                sw.process_batch(
                    (0..BATCH).map(|_| (ports[1], &frame[..])),
                    Duration::from_millis(t),
                    &mut out,
                );
                black_box(out.tx().len())
            })
        });
    }
    g.finish();
}

fn bench_offloads(c: &mut Criterion) {
    // A 64 KiB TCP/IPv4 super-frame, as a TSO TAP hands it over.
    let payload = 65_535 - 20 - 20;
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    EthernetRepr {
        src: mac(2),
        dst: mac(3),
        vlan: None,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .expect("fits");
    Ipv4Repr {
        src: ip(2),
        dst: ip(3),
        protocol: IpProtocol::TCP,
        payload_len: 20 + payload,
        ttl: 64,
    }
    .emit(&mut f[14..])
    .expect("fits");
    tcp::emit_header(&mut f[34..], 40000, 5201, 1, 1, tcp::FLAG_ACK, 512).expect("fits");
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let ph = PseudoHeader::V4 {
        src: ip(2),
        dst: ip(3),
    };
    TcpPacket::new_checked(&mut f[34..])
        .expect("tcp")
        .fill_checksum(&ph);
    let mut g = c.benchmark_group("offload");
    g.throughput(Throughput::Bytes(f.len() as u64));
    let hdr = VnetHdrRepr {
        flags: vnet_hdr::FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV4,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdrRepr::NONE
    };
    let mut scratch = vec![0u8; 2048];
    g.bench_function("segment_tcp_64KiB_mss1448", |b| {
        b.iter(|| {
            let mut n = 0usize;
            vnet_hdr::segment_tcp(&f, &hdr, &mut scratch, |s| n += s.len()).expect("segments");
            black_box(n)
        })
    });
    let csum = VnetHdrRepr {
        gso_type: GsoType::None,
        ..hdr
    };
    g.bench_function("complete_checksum_64KiB", |b| {
        b.iter(|| complete_checksum(black_box(&mut f), &csum).expect("fits"))
    });
    g.finish();
}

criterion_group!(benches, bench_process, bench_offloads);
criterion_main!(benches);
