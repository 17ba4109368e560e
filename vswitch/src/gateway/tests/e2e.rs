//! The engine end to end, with real host sockets on loopback: the test plays the switch and a
//! container (a smoltcp stack at 172.18.0.2 behind the gateway port's socketpair).
//! `allow_loopback` stands in for "the host's address", so nothing leaves the machine.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{udp_frame, CMAC, GWMAC};
use crate::gateway::{check_emitted, frame, Gateway, GatewayConfig, GatewayError, Proto};
use crate::port::tap::VNET_HDR_LEN;
use crate::wire::vnet_hdr::{resolve_offloads, VnetHdr, VnetHdrRepr};
use crate::wire::{EtherType, EthernetRepr, UdpPacket};

const CIP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const GIP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);

/// The container's link: frames to/from the gateway port.
struct Link {
    file: File,
    /// Non-TCP frames received (UDP/ICMP answers), for the test to inspect.
    other: VecDeque<Vec<u8>>,
    /// Frames read and resolved (checksums completed, super-frames cut) as the datapath does
    /// for a port without offloads, not yet taken.
    ready: VecDeque<Vec<u8>>,
}

impl Link {
    fn send_frame(&mut self, f: &[u8]) {
        let mut b = vec![0u8; VNET_HDR_LEN];
        b.extend_from_slice(f);
        let _ = self.file.write(&b);
    }

    fn recv_frame(&mut self) -> Option<Vec<u8>> {
        while self.ready.is_empty() {
            let mut b = vec![0u8; 70_000];
            let n = match self.file.read(&mut b) {
                Ok(n) if n > VNET_HDR_LEN => n,
                _ => return None,
            };
            let h = VnetHdr::new_checked(&b[..VNET_HDR_LEN]).expect("header");
            let h = VnetHdrRepr::parse(&h).expect("valid virtio-net header");
            let mut scratch = vec![0u8; 70_000];
            let ready = &mut self.ready;
            resolve_offloads(&mut b[VNET_HDR_LEN..n], &h, &mut scratch, |f| {
                ready.push_back(f.to_vec())
            })
            .expect("offloads the datapath can resolve");
        }
        self.ready.pop_front()
    }
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Link);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut p = vec![0u8; len];
        let r = f(&mut p);
        let eth = EthernetRepr {
            src: CMAC,
            dst: GWMAC,
            vlan: None,
            ethertype: EtherType::IPV4,
        };
        let mut fr = vec![0u8; 14];
        eth.emit(&mut fr).expect("fits");
        fr.extend_from_slice(&p);
        self.0.send_frame(&fr);
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        loop {
            let f = self.recv_frame()?;
            check_emitted(&f).expect("the engine only emits valid frames");
            let p = frame::parse(&f).expect("ip");
            if p.proto == crate::wire::IpProtocol::TCP {
                return Some((Rx(p.packet.to_vec()), Tx(self)));
            }
            self.other.push_back(f);
        }
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}

struct Container {
    link: Link,
    iface: Interface,
    sockets: SocketSet<'static>,
    start: Instant,
}

impl Container {
    fn new(file: File) -> Container {
        let mut link = Link {
            file,
            other: VecDeque::new(),
            ready: VecDeque::new(),
        };
        let mut c = Config::new(HardwareAddress::Ip);
        c.random_seed = 99;
        let mut iface = Interface::new(c, &mut link, smoltcp::time::Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(CIP), 16));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(GIP);
        Container {
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            start: Instant::now(),
        }
    }

    fn poll(&mut self) {
        let now = smoltcp::time::Instant::from_micros(self.start.elapsed().as_micros() as i64);
        self.iface.poll(now, &mut self.link, &mut self.sockets);
    }

    fn tcp_socket(&mut self) -> smoltcp::iface::SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65_536]),
            tcp::SocketBuffer::new(vec![0; 65_536]),
        );
        self.sockets.add(s)
    }

    /// Polls until `done` holds or 10 s pass.
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&mut Container) -> bool) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            self.poll();
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("timed out: {what}");
    }
}

#[test]
fn engine_with_real_host_sockets_on_loopback() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = GatewayConfig::new("e2e", GWMAC, vec!["172.18.0.0/16".parse().expect("net")]);
    cfg.gateway_v4 = Some(GIP);
    cfg.allow_loopback = true;
    let (gw, io) = Gateway::start(rt.handle(), cfg).expect("start");
    assert!(io.offload, "the gateway port takes super-frames");
    gw.add_neighbor(IpAddr::V4(CIP), CMAC);
    let mut c = Container::new(io.file);
    // Test frames are written with blocking semantics off: the socketpair is non-blocking.
    let _ = c.link.file.as_raw_fd();

    // 1. Outbound TCP: an echo server on the host sees the host's address as the client.
    let server = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let server_addr = server.local_addr().expect("addr");
    let (peer_tx, peer_rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        while let Ok((mut s, peer)) = server.accept().await {
            let _ = peer_tx.send(peer);
            tokio::spawn(async move {
                let mut b = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let h = c.tcp_socket();
    {
        let cx = c.iface.context();
        c.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, server_addr, (IpAddress::Ipv4(CIP), 40_001))
            .expect("connect");
    }
    c.run_until("outbound connect", |c| {
        c.sockets.get::<tcp::Socket>(h).may_send()
    });
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    c.run_until("outbound echo", |c| {
        let s = c.sockets.get_mut::<tcp::Socket>(h);
        if sent < payload.len() && s.can_send() {
            sent += s.send_slice(&payload[sent..]).unwrap_or(0);
        }
        if s.can_recv() {
            let _ = s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            });
        }
        got.len() == payload.len()
    });
    assert_eq!(got, payload, "100 kB echoed intact");
    let peer = peer_rx.recv_timeout(Duration::from_secs(1)).expect("peer");
    assert!(
        peer.ip().is_loopback(),
        "server saw the host's address: {peer}"
    );
    c.sockets.get_mut::<tcp::Socket>(h).close();
    c.run_until("outbound close", |c| {
        matches!(
            c.sockets.get::<tcp::Socket>(h).state(),
            tcp::State::TimeWait | tcp::State::Closed
        )
    });

    // 2. A refused host connection resets the container's.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let h2 = c.tcp_socket();
    {
        let cx = c.iface.context();
        c.sockets
            .get_mut::<tcp::Socket>(h2)
            .connect(
                cx,
                (IpAddress::Ipv4(Ipv4Addr::LOCALHOST), closed_port),
                (IpAddress::Ipv4(CIP), 40_002),
            )
            .expect("connect");
    }
    c.run_until("refused", |c| {
        c.sockets.get::<tcp::Socket>(h2).state() == tcp::State::Closed
    });

    // 3. UDP echo through a host socket.
    let userver = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .expect("bind");
    let uaddr = userver.local_addr().expect("addr");
    rt.spawn(async move {
        let mut b = vec![0u8; 2048];
        while let Ok((n, p)) = userver.recv_from(&mut b).await {
            let _ = userver.send_to(&b[..n], p).await;
        }
    });
    let csrc = SocketAddr::new(IpAddr::V4(CIP), 5555);
    c.link.send_frame(&udp_frame(csrc, uaddr, b"udp ping"));

    c.run_until("udp echo", |c| {
        c.link.other.iter().any(|f| {
            let p = frame::parse(f).expect("ip");
            UdpPacket::new_checked(p.l4)
                .map(|u| u.payload() == b"udp ping" && p.src == uaddr.ip())
                .unwrap_or(false)
        })
    });

    // 4. Published TCP port: a host client reaches a server in the container.
    let srv = c.tcp_socket();
    c.sockets
        .get_mut::<tcp::Socket>(srv)
        .listen(80)
        .expect("listen");
    let publication = gw
        .publish(
            Proto::Tcp,
            "127.0.0.1:0".parse().expect("addr"),
            SocketAddr::new(IpAddr::V4(CIP), 80),
        )
        .expect("publish");
    let host_port = publication.local_addr();
    assert_ne!(host_port.port(), 0);
    // A taken port gives Docker's message.
    match gw.publish(Proto::Tcp, host_port, SocketAddr::new(IpAddr::V4(CIP), 81)) {
        Err(e @ GatewayError::PortAllocated(_)) => assert_eq!(
            e.to_string(),
            format!("Bind for {host_port} failed: port is already allocated")
        ),
        other => panic!("expected PortAllocated, got {other:?}"),
    }
    let client = rt.spawn(async move {
        let mut s = tokio::net::TcpStream::connect(host_port).await?;
        s.write_all(b"hello container").await?;
        let mut b = vec![0u8; 64];
        let n = s.read(&mut b).await?;
        Ok::<_, std::io::Error>(b[..n].to_vec())
    });
    let mut peer_seen = None;
    c.run_until("published accept + echo", |c| {
        let s = c.sockets.get_mut::<tcp::Socket>(srv);
        if s.can_recv() {
            peer_seen = s.remote_endpoint();
            let mut b = [0u8; 64];
            let n = s.recv_slice(&mut b).unwrap_or(0);
            let _ = s.send_slice(&b[..n]);
        }
        client.is_finished()
    });
    let echoed = rt
        .block_on(client)
        .expect("join")
        .expect("published client");
    assert_eq!(echoed, b"hello container");
    let peer_seen = peer_seen.expect("peer");
    assert_eq!(
        peer_seen.addr,
        IpAddress::Ipv4(GIP),
        "the container sees the gateway"
    );
    assert!(crate::switch::RELAY_PORTS.contains(&peer_seen.port));
    c.sockets.get_mut::<tcp::Socket>(srv).abort();
    c.poll();

    // 5. Hairpin: the container reaches its own published port through the host address.
    let srv2 = c.tcp_socket();
    c.sockets
        .get_mut::<tcp::Socket>(srv2)
        .listen(80)
        .expect("listen");
    let hc = c.tcp_socket();
    {
        let cx = c.iface.context();
        c.sockets
            .get_mut::<tcp::Socket>(hc)
            .connect(cx, host_port, (IpAddress::Ipv4(CIP), 40_003))
            .expect("connect");
    }
    let mut answered = false;
    let mut sent = false;
    c.run_until("hairpin", |c| {
        let s = c.sockets.get_mut::<tcp::Socket>(hc);
        // Once: the relay into the container may open a few polls later.
        if s.can_send() && !sent {
            sent = s.send_slice(b"hairpin").unwrap_or(0) == 7;
        }
        let srv = c.sockets.get_mut::<tcp::Socket>(srv2);
        if srv.can_recv() {
            let mut b = [0u8; 64];
            let n = srv.recv_slice(&mut b).unwrap_or(0);
            assert_eq!(&b[..n], b"hairpin");
            let _ = srv.send_slice(b"pong");
            answered = true;
        }
        let s = c.sockets.get_mut::<tcp::Socket>(hc);
        let mut b = [0u8; 16];
        answered && s.can_recv() && s.recv_slice(&mut b).unwrap_or(0) == 4
    });

    // 6. Unpublishing closes the listener.
    drop(publication);
    std::thread::sleep(Duration::from_millis(100));
    assert!(std::net::TcpStream::connect(host_port).is_err());

    let stats = rt.block_on(gw.stats()).expect("stats");
    assert_eq!(stats.no_neighbor, 0, "{stats:?}");
    gw.shutdown();
}

#[test]
fn icmp_echo_through_a_raw_socket() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (a raw ICMP socket); CI runs as root"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = GatewayConfig::new(
        "e2e-icmp",
        GWMAC,
        vec!["172.18.0.0/16".parse().expect("net")],
    );
    cfg.gateway_v4 = Some(GIP);
    cfg.allow_loopback = true;
    let (gw, io) = Gateway::start(rt.handle(), cfg).expect("start");
    let mut link = Link {
        file: io.file,
        other: VecDeque::new(),
        ready: VecDeque::new(),
    };
    let (s, d) = (IpAddr::V4(CIP), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let m = frame::echo_message(false, None, false, 0x4242, 7, b"are you there");
    let f = crate::wire::testutil::ip_frame(
        CMAC,
        GWMAC,
        None,
        frame::pseudo(s, d).expect("v4"),
        crate::wire::IpProtocol::ICMP,
        &[],
        &m,
    );
    link.send_frame(&f);
    let t = Instant::now();
    let reply = loop {
        assert!(t.elapsed() < Duration::from_secs(5), "no echo reply");
        if let Some(f) = link.recv_frame() {
            break f;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    check_emitted(&reply).expect("valid");
    let p = frame::parse(&reply).expect("ip");
    assert_eq!((p.src, p.dst), (d, s));
    let icmp = crate::wire::IcmpPacket::new_checked(p.l4).expect("icmp");
    assert_eq!(icmp.msg_type(), crate::wire::icmp::V4_ECHO_REPLY);
    assert_eq!(
        icmp.echo_ident_seq(),
        Some((0x4242, 7)),
        "the container's own id"
    );
    assert_eq!(&p.l4[8..], b"are you there");
    gw.shutdown();
}
