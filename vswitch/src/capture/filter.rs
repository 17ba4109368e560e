//! The capture filter language: a small, documented subset of pcap-filter(7).
//!
//! ```text
//! expr    := term { ("or" | "||") term }
//! term    := factor { ["and" | "&&"] factor }      (juxtaposition means "and")
//! factor  := ("not" | "!") factor | "(" expr ")" | primitive
//! primitive :=
//!     "arp" | "ip" | "ip6" | "icmp" | "icmp6" | "tcp" | "udp" | "vlan"
//!   | ["src" | "dst"] "host" ADDRESS            IPv4/IPv6 source or destination (ARP: sender
//!                                               or target protocol address)
//!   | ["src" | "dst"] "net" ADDRESS/PREFIX
//!   | ["src" | "dst"] "port" NUMBER             TCP or UDP port
//!   | "ether" ["src" | "dst"] "host" MAC
//!   | "ether" "broadcast" | "broadcast" | "multicast"
//! ```
//!
//! So `icmp`, `arp`, `tcp port 80`, `host 10.0.0.2 and not icmp`, `udp and (port 53 or port
//! 5353)` work as with tcpdump. One 802.1Q tag is looked through. [`Filter::parse`] never
//! panics and bounds its input ([`MAX_FILTER_LEN`]) and nesting ([`MAX_DEPTH`]);
//! [`Filter::matches`] reads a frame without allocating.

use crate::wire::MacAddr;
use ipnet::IpNet;
use std::net::IpAddr;

/// Longest filter expression accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 1024;
/// Deepest nesting of `not` and parentheses accepted.
pub const MAX_DEPTH: usize = 32;

/// Why a filter expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter longer than {MAX_FILTER_LEN} bytes")]
    TooLong,
    #[error("filter nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("filter: unexpected end of expression")]
    UnexpectedEnd,
    #[error("filter: unexpected {0:?}")]
    Unexpected(String),
    #[error("filter: invalid address {0:?}")]
    BadAddress(String),
    #[error("filter: invalid port {0:?}")]
    BadPort(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Any,
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    True,
    Arp,
    Ip,
    Ip6,
    Icmp,
    Icmp6,
    Tcp,
    Udp,
    Vlan,
    Broadcast,
    Multicast,
    Host(Dir, IpAddr),
    Net(Dir, IpNet),
    Port(Dir, u16),
    Ether(Dir, MacAddr),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// A parsed filter. The empty expression matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    root: Node,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { root: Node::True }
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMP6: u8 = 58;

/// What the filter looks at in one frame, read once per frame (no allocation).
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vlan: bool,
    ethertype: u16,
    src_ip: Option<IpAddr>,
    dst_ip: Option<IpAddr>,
    proto: Option<u8>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4(b: &[u8], at: usize) -> Option<IpAddr> {
    let s = b.get(at..at + 4)?;
    Some(IpAddr::from([s[0], s[1], s[2], s[3]]))
}

fn ip6(b: &[u8], at: usize) -> Option<IpAddr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(IpAddr::from(s))
}

impl Summary {
    fn of(frame: &[u8]) -> Summary {
        let mut s = Summary::default();
        let (Some(d), Some(sm)) = (frame.get(0..6), frame.get(6..12)) else {
            return s;
        };
        s.dst_mac.copy_from_slice(d);
        s.src_mac.copy_from_slice(sm);
        let mut off = 12;
        let mut et = be16(frame, off).unwrap_or(0);
        if et == ETH_VLAN {
            s.vlan = true;
            off += 4;
            et = be16(frame, off).unwrap_or(0);
        }
        s.ethertype = et;
        let l3 = off + 2;
        let l4 = match et {
            ETH_IPV4 => {
                let ihl = frame.get(l3).map_or(0, |v| usize::from(v & 0x0f) * 4);
                s.src_ip = ip4(frame, l3 + 12);
                s.dst_ip = ip4(frame, l3 + 16);
                s.proto = frame.get(l3 + 9).copied();
                // Only the first fragment carries the ports.
                let frag = be16(frame, l3 + 6).unwrap_or(0) & 0x1fff;
                (ihl >= 20 && frag == 0).then_some(l3 + ihl)
            }
            ETH_IPV6 => {
                s.src_ip = ip6(frame, l3 + 8);
                s.dst_ip = ip6(frame, l3 + 24);
                s.proto = frame.get(l3 + 6).copied();
                Some(l3 + 40)
            }
            ETH_ARP => {
                // Ethernet/IPv4 ARP: sender protocol address at 14, target at 24.
                if be16(frame, l3 + 2) == Some(ETH_IPV4) {
                    s.src_ip = ip4(frame, l3 + 14);
                    s.dst_ip = ip4(frame, l3 + 24);
                }
                None
            }
            _ => None,
        };
        if let (Some(at), Some(PROTO_TCP | PROTO_UDP)) = (l4, s.proto) {
            s.src_port = be16(frame, at);
            s.dst_port = be16(frame, at + 2);
        }
        s
    }
}

fn dir_match<T: PartialEq>(d: Dir, src: Option<T>, dst: Option<T>, want: &T) -> bool {
    let is = |v: &Option<T>| v.as_ref() == Some(want);
    match d {
        Dir::Any => is(&src) || is(&dst),
        Dir::Src => is(&src),
        Dir::Dst => is(&dst),
    }
}

impl Node {
    fn eval(&self, s: &Summary) -> bool {
        let is_ip = matches!(s.ethertype, ETH_IPV4 | ETH_IPV6);
        match self {
            Node::True => true,
            Node::Arp => s.ethertype == ETH_ARP,
            Node::Ip => s.ethertype == ETH_IPV4,
            Node::Ip6 => s.ethertype == ETH_IPV6,
            Node::Icmp => s.ethertype == ETH_IPV4 && s.proto == Some(PROTO_ICMP),
            Node::Icmp6 => s.ethertype == ETH_IPV6 && s.proto == Some(PROTO_ICMP6),
            Node::Tcp => is_ip && s.proto == Some(PROTO_TCP),
            Node::Udp => is_ip && s.proto == Some(PROTO_UDP),
            Node::Vlan => s.vlan,
            Node::Broadcast => s.dst_mac == [0xff; 6],
            Node::Multicast => s.dst_mac[0] & 1 == 1,
            Node::Host(d, a) => dir_match(*d, s.src_ip, s.dst_ip, a),
            Node::Net(d, n) => {
                let inn = |v: Option<IpAddr>| v.is_some_and(|a| n.contains(&a));
                match d {
                    Dir::Any => inn(s.src_ip) || inn(s.dst_ip),
                    Dir::Src => inn(s.src_ip),
                    Dir::Dst => inn(s.dst_ip),
                }
            }
            Node::Port(d, p) => dir_match(*d, s.src_port, s.dst_port, p),
            Node::Ether(d, m) => dir_match(*d, Some(s.src_mac), Some(s.dst_mac), &m.0),
            Node::Not(a) => !a.eval(s),
            Node::And(a, b) => a.eval(s) && b.eval(s),
            Node::Or(a, b) => a.eval(s) || b.eval(s),
        }
    }
}

struct Parser<'a> {
    toks: Vec<&'a str>,
    pos: usize,
}

fn tokenize(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in src.char_indices() {
        let single = matches!(c, '(' | ')' | '!');
        if c.is_whitespace() || single {
            if let Some(s) = start.take() {
                out.push(&src[s..i]);
            }
            if single {
                out.push(&src[i..i + 1]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&src[s..]);
    }
    out
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<&'a str, FilterError> {
        let t = self.peek().ok_or(FilterError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(t)
    }

    fn expr(&mut self, depth: usize) -> Result<Node, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        let mut left = self.term(depth)?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.pos += 1;
            let right = self.term(depth)?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self, depth: usize) -> Result<Node, FilterError> {
        let mut left = self.factor(depth)?;
        loop {
            match self.peek() {
                Some("and" | "&&") => self.pos += 1,
                None | Some("or" | "||" | ")") => return Ok(left),
                Some(_) => {}
            }
            let right = self.factor(depth)?;
            left = Node::And(Box::new(left), Box::new(right));
        }
    }

    fn factor(&mut self, depth: usize) -> Result<Node, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        match self.next()? {
            "not" | "!" => Ok(Node::Not(Box::new(self.factor(depth + 1)?))),
            "(" => {
                let e = self.expr(depth + 1)?;
                match self.next()? {
                    ")" => Ok(e),
                    t => Err(FilterError::Unexpected(t.to_string())),
                }
            }
            t => self.primitive(t),
        }
    }

    fn primitive(&mut self, t: &'a str) -> Result<Node, FilterError> {
        let (dir, t) = match t {
            "src" => (Dir::Src, self.next()?),
            "dst" => (Dir::Dst, self.next()?),
            t => (Dir::Any, t),
        };
        let simple = match t {
            "arp" => Some(Node::Arp),
            "ip" => Some(Node::Ip),
            "ip6" => Some(Node::Ip6),
            "icmp" => Some(Node::Icmp),
            "icmp6" => Some(Node::Icmp6),
            "tcp" => Some(Node::Tcp),
            "udp" => Some(Node::Udp),
            "vlan" => Some(Node::Vlan),
            "broadcast" => Some(Node::Broadcast),
            "multicast" => Some(Node::Multicast),
            _ => None,
        };
        if let Some(n) = simple {
            if dir != Dir::Any {
                return Err(FilterError::Unexpected(t.to_string()));
            }
            return Ok(n);
        }
        match t {
            "host" => {
                let a = self.next()?;
                a.parse()
                    .map(|ip| Node::Host(dir, ip))
                    .map_err(|_| FilterError::BadAddress(a.to_string()))
            }
            "net" => {
                let a = self.next()?;
                a.parse::<IpNet>()
                    .map(|n| Node::Net(dir, n.trunc()))
                    .map_err(|_| FilterError::BadAddress(a.to_string()))
            }
            "port" => {
                let p = self.next()?;
                p.parse()
                    .map(|p| Node::Port(dir, p))
                    .map_err(|_| FilterError::BadPort(p.to_string()))
            }
            "ether" if dir == Dir::Any => {
                let (dir, t) = match self.next()? {
                    "src" => (Dir::Src, self.next()?),
                    "dst" => (Dir::Dst, self.next()?),
                    t => (Dir::Any, t),
                };
                match t {
                    "broadcast" if dir == Dir::Any => Ok(Node::Broadcast),
                    "multicast" if dir == Dir::Any => Ok(Node::Multicast),
                    "host" => {
                        let m = self.next()?;
                        m.parse()
                            .map(|m| Node::Ether(dir, m))
                            .map_err(|_| FilterError::BadAddress(m.to_string()))
                    }
                    t => Err(FilterError::Unexpected(t.to_string())),
                }
            }
            t => Err(FilterError::Unexpected(t.to_string())),
        }
    }
}

impl Filter {
    /// Parses an expression of the [module's](self) language; blank matches everything.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        if src.len() > MAX_FILTER_LEN {
            return Err(FilterError::TooLong);
        }
        let mut p = Parser {
            toks: tokenize(src),
            pos: 0,
        };
        if p.toks.is_empty() {
            return Ok(Filter::default());
        }
        let root = p.expr(0)?;
        match p.peek() {
            None => Ok(Filter { root }),
            Some(t) => Err(FilterError::Unexpected(t.to_string())),
        }
    }

    /// Whether `frame` (an Ethernet frame) passes.
    pub fn matches(&self, frame: &[u8]) -> bool {
        match self.root {
            Node::True => true,
            ref n => n.eval(&Summary::of(frame)),
        }
    }

    /// Matches everything (no expression given).
    pub fn is_empty(&self) -> bool {
        self.root == Node::True
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_v4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    fn arp(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&ETH_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes());
        f[16..18].copy_from_slice(&ETH_IPV4.to_be_bytes());
        f[28..32].copy_from_slice(&sender);
        f[38..42].copy_from_slice(&target);
        f
    }

    fn m(expr: &str, f: &[u8]) -> bool {
        Filter::parse(expr).unwrap().matches(f)
    }

    #[test]
    fn primitives() {
        let ping = frame_v4(PROTO_ICMP, [10, 0, 0, 2], [10, 0, 0, 3], 0, 0);
        let web = frame_v4(PROTO_TCP, [10, 0, 0, 2], [10, 0, 0, 3], 40000, 80);
        let a = arp([10, 0, 0, 2], [10, 0, 0, 1]);
        assert!(m("", &ping) && m("  ", &a));
        assert!(m("icmp", &ping) && !m("icmp", &web) && !m("icmp", &a));
        assert!(m("arp", &a) && !m("arp", &ping));
        assert!(m("tcp port 80", &web) && !m("tcp port 80", &ping));
        assert!(m("dst port 80", &web) && !m("src port 80", &web));
        assert!(m("host 10.0.0.3", &ping) && !m("host 10.0.0.9", &ping));
        assert!(m("src host 10.0.0.2", &ping) && !m("dst host 10.0.0.2", &ping));
        assert!(m("host 10.0.0.1", &a), "ARP matches on protocol addresses");
        assert!(m("net 10.0.0.0/24", &ping) && !m("net 10.1.0.0/16", &ping));
        assert!(m("ether host 02:00:00:00:00:01", &ping));
        assert!(m("ether dst host 02:00:00:00:00:02", &ping));
        assert!(m("broadcast", &a) && !m("broadcast", &ping));
        assert!(m("not icmp", &web) && m("! arp", &ping));
        assert!(m("icmp or arp", &a) && m("icmp || arp", &ping));
        assert!(m("host 10.0.0.2 and (icmp or tcp port 80)", &web));
        assert!(!m("host 10.0.0.2 && not (icmp or tcp)", &web));
        assert!(m("ip and not ip6", &web) && !m("udp", &web));
    }

    #[test]
    fn refusals() {
        for bad in [
            "icmp and",
            "(icmp",
            "icmp)",
            "host",
            "host 10.0.0.300",
            "port 70000",
            "bogus",
            "src icmp",
            "ether host 1:2",
            "net 10.0.0.0/40",
            "or",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let deep = "not ".repeat(MAX_DEPTH + 2) + "icmp";
        assert_eq!(Filter::parse(&deep), Err(FilterError::TooDeep));
        let nested = "(".repeat(MAX_DEPTH + 2) + "icmp" + &")".repeat(MAX_DEPTH + 2);
        assert_eq!(Filter::parse(&nested), Err(FilterError::TooDeep));
        assert_eq!(
            Filter::parse(&"x".repeat(MAX_FILTER_LEN + 1)),
            Err(FilterError::TooLong)
        );
    }

    #[test]
    fn short_frames_never_panic() {
        let f = Filter::parse("tcp port 80 or host ::1 or ether host 02:00:00:00:00:01").unwrap();
        let full = frame_v4(PROTO_TCP, [1, 2, 3, 4], [5, 6, 7, 8], 1, 80);
        for n in 0..full.len() {
            let _ = f.matches(&full[..n]);
        }
        assert!(f.matches(&full));
    }
}
