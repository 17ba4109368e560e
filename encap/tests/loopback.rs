//! Two tunnel sockets on 127.0.0.1: batched send and receive, then the receive filter.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use encap::{decapsulate, encapsulate, DropReason, Filter, RecvBatch, TunnelSocket, HEADER_LEN};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_secs(5);

fn socket() -> TunnelSocket {
    TunnelSocket::bind(SocketAddr::new(LOOPBACK, 0)).expect("bind 127.0.0.1:0")
}

/// An inner Ethernet frame, distinct per `i` and of varying length.
fn frame(i: usize) -> Vec<u8> {
    let mut f = vec![
        0x02, 0, 0, 0, 0, i as u8, 0x02, 0, 0, 0, 0, 0xee, 0x08, 0x00,
    ];
    f.extend((0..(40 + i * 97)).map(|j| (i * 31 + j) as u8));
    f
}

/// Receives until `want` datagrams arrived (several calls allowed) or the timeout.
fn recv_all(rx: &TunnelSocket, batch: &mut RecvBatch, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < want && Instant::now() < deadline {
        match rx.recv_batch(batch) {
            Ok(_) => got.extend(batch.iter().map(|(a, d)| (a, d.to_vec()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("recv_batch: {e}"),
        }
    }
    got
}

#[test]
fn batch_of_eight_intact() {
    let (tx, rx) = (socket(), socket());
    assert_ne!(tx.local_addr().port(), 0);
    let mut batch = RecvBatch::new(16, 2048);
    assert_eq!(
        rx.recv_batch(&mut batch).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );

    let datagrams: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let inner = frame(i);
            let mut out = vec![0u8; HEADER_LEN + inner.len()];
            let n = encapsulate(256 + i as u32, &inner, &mut out).unwrap();
            assert_eq!(n, out.len());
            out
        })
        .collect();
    let to_send: Vec<(SocketAddr, &[u8])> = datagrams
        .iter()
        .map(|d| (rx.local_addr(), d.as_slice()))
        .collect();
    assert_eq!(tx.send_batch(&to_send).unwrap(), 8);

    let got = recv_all(&rx, &mut batch, 8);
    assert_eq!(got.len(), 8);
    for (i, (src, data)) in got.iter().enumerate() {
        assert_eq!(*src, tx.local_addr());
        assert_eq!(data, &datagrams[i]);
        let (repr, inner) = decapsulate(data).unwrap();
        assert_eq!(repr.vni, 256 + i as u32);
        assert_eq!(inner, frame(i).as_slice());
    }
    assert_eq!(batch.truncated(), 0);
}

#[test]
fn small_batches_and_truncation() {
    let (tx, rx) = (socket(), socket());
    // Three datagrams per call: eight need several calls.
    let mut batch = RecvBatch::new(3, 1024);
    let big = vec![0x08u8; 1500];
    let small: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; 100]).collect();
    let mut to_send: Vec<(SocketAddr, &[u8])> = vec![(rx.local_addr(), big.as_slice())];
    to_send.extend(small.iter().map(|d| (rx.local_addr(), d.as_slice())));
    assert_eq!(tx.send_batch(&to_send).unwrap(), 9);
    let got = recv_all(&rx, &mut batch, 8);
    assert_eq!(got.len(), 8);
    for (i, (_, d)) in got.iter().enumerate() {
        assert_eq!(d, &small[i]);
    }
    assert_eq!(batch.truncated(), 1);
}

#[test]
fn long_batch_spans_several_sendmmsg_calls() {
    let (tx, rx) = (socket(), socket());
    let n = encap::SEND_BATCH_MAX + 10;
    let payloads: Vec<[u8; 4]> = (0..n as u32).map(|i| i.to_be_bytes()).collect();
    let to_send: Vec<(SocketAddr, &[u8])> =
        payloads.iter().map(|p| (rx.local_addr(), &p[..])).collect();
    assert_eq!(tx.send_batch(&to_send).unwrap(), n);
    let mut batch = RecvBatch::new(32, 64);
    let got = recv_all(&rx, &mut batch, n);
    let bodies: Vec<&[u8]> = got.iter().map(|(_, d)| d.as_slice()).collect();
    let want: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    assert_eq!(bodies, want);
}

#[test]
fn filter_on_received_datagrams() {
    let (known, stranger, rx) = (socket(), socket(), socket());
    // Both senders are on 127.0.0.1, so "unknown VTEP" is checked with another source IP
    // below; here the VNI decides.
    let mut filter = Filter::new();
    filter.add_vtep(LOOPBACK);
    filter.add_vni(4096);
    let inner = frame(1);
    let mut good = vec![0u8; 1500];
    let n = encapsulate(4096, &inner, &mut good).unwrap();
    good.truncate(n);
    let mut wrong_vni = vec![0u8; 1500];
    let n = encapsulate(4097, &inner, &mut wrong_vni).unwrap();
    wrong_vni.truncate(n);
    known.send_to(rx.local_addr(), &good).unwrap();
    stranger.send_to(rx.local_addr(), &wrong_vni).unwrap();
    known.send_to(rx.local_addr(), b"not vxlan").unwrap();

    let mut batch = RecvBatch::default();
    let got = recv_all(&rx, &mut batch, 3);
    assert_eq!(got.len(), 3);
    let mut accepted = Vec::new();
    for (src, d) in &got {
        match filter.check(src.ip(), d) {
            Ok((vni, range)) => accepted.push((vni, d[range].to_vec())),
            Err(DropReason::UnknownVni(4097)) | Err(DropReason::Malformed(_)) => {}
            Err(other) => panic!("unexpected drop {other:?}"),
        }
    }
    assert_eq!(accepted, vec![(4096, inner.clone())]);
    // A datagram from an address that is not a VTEP.
    assert_eq!(
        filter.check(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), &good),
        Err(DropReason::UnknownVtep)
    );
    let c = filter.counters;
    assert_eq!(
        (c.accepted, c.unknown_vni, c.malformed, c.unknown_vtep),
        (1, 1, 1, 1)
    );
}

/// `count` segments of `size` bytes (the last `last` bytes long), each filled with its index.
fn segments(count: usize, size: usize, last: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..count {
        let n = if i + 1 == count { last } else { size };
        v.extend(std::iter::repeat_n(i as u8 + 1, n));
    }
    v
}

fn check_segments(got: &[(SocketAddr, Vec<u8>)], count: usize, size: usize, last: usize) {
    assert_eq!(got.len(), count);
    for (i, (_, d)) in got.iter().enumerate() {
        let n = if i + 1 == count { last } else { size };
        assert_eq!(d.len(), n, "segment {i}");
        assert!(d.iter().all(|&b| b == i as u8 + 1), "segment {i} content");
    }
}

#[test]
fn gso_send_plain_receive() {
    let (tx, rx) = (socket(), socket());
    let data = segments(4, 1000, 600);
    assert_eq!(tx.send_gso(rx.local_addr(), &data, 1000).unwrap(), 4);
    let mut batch = RecvBatch::new(8, 2048);
    let got = recv_all(&rx, &mut batch, 4);
    check_segments(&got, 4, 1000, 600);
    assert_eq!(batch.coalesced(), 0);
    eprintln!("gso_enabled={}", tx.gso_enabled());
}

#[test]
fn gso_send_gro_receive() {
    let tx = socket();
    let options = encap::TunnelOptions {
        gro: true,
        ..Default::default()
    };
    let rx = TunnelSocket::bind_with(SocketAddr::new(LOOPBACK, 0), &options).unwrap();
    let data = segments(10, 1400, 1400);
    assert_eq!(tx.send_gso(rx.local_addr(), &data, 1400).unwrap(), 10);
    // Also plain datagrams mixed in.
    let plain = [9u8; 77];
    tx.send_batch(&[(rx.local_addr(), &plain[..])]).unwrap();
    let mut batch = RecvBatch::default();
    let got = recv_all(&rx, &mut batch, 11);
    check_segments(&got[..10], 10, 1400, 1400);
    assert_eq!(got[10].1, plain.to_vec());
    eprintln!(
        "gso_enabled={} gro_enabled={} coalesced={}",
        tx.gso_enabled(),
        rx.gro_enabled(),
        batch.coalesced()
    );
    if tx.gso_enabled() && rx.gro_enabled() {
        // On loopback the GSO super-datagram reaches the GRO socket in one piece.
        assert!(batch.coalesced() >= 1);
    }
}

#[test]
fn gso_limits() {
    let (tx, rx) = (socket(), socket());
    let peer = rx.local_addr();
    let kind = |r: io::Result<usize>| r.unwrap_err().kind();
    assert_eq!(
        kind(tx.send_gso(peer, &[1; 100], 0)),
        io::ErrorKind::InvalidInput
    );
    let too_many = vec![1u8; encap::GSO_MAX_SEGMENTS + 1];
    assert_eq!(
        kind(tx.send_gso(peer, &too_many, 1)),
        io::ErrorKind::InvalidInput
    );
    let too_long = vec![1u8; encap::MAX_DATAGRAM + 1];
    assert_eq!(
        kind(tx.send_gso(peer, &too_long, 1400)),
        io::ErrorKind::InvalidInput
    );
    // A single segment is a plain send; 64 one-byte segments are the maximum.
    assert_eq!(tx.send_gso(peer, &[5; 10], 1400).unwrap(), 1);
    let max = segments(encap::GSO_MAX_SEGMENTS, 1, 1);
    assert_eq!(tx.send_gso(peer, &max, 1).unwrap(), encap::GSO_MAX_SEGMENTS);
    let mut batch = RecvBatch::new(64, 2048);
    let got = recv_all(&rx, &mut batch, 1 + encap::GSO_MAX_SEGMENTS);
    assert_eq!(got[0].1, vec![5; 10]);
    check_segments(&got[1..], encap::GSO_MAX_SEGMENTS, 1, 1);
}
