//! One line per frame, in the spirit of `tcpdump -n` (what `vswitch capture` prints without
//! `-w`). Reads any bytes without panicking.

use std::fmt::Write;
use std::net::IpAddr;

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

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn icmp_name(v6: bool, t: u8) -> &'static str {
    match (v6, t) {
        (false, 0) | (true, 129) => "echo reply",
        (false, 8) | (true, 128) => "echo request",
        (false, 3) | (true, 1) => "destination unreachable",
        (false, 11) | (true, 3) => "time exceeded",
        (true, 133) => "router solicitation",
        (true, 134) => "router advertisement",
        (true, 135) => "neighbor solicitation",
        (true, 136) => "neighbor advertisement",
        _ => "other",
    }
}

/// A one-line description of an Ethernet frame of `orig_len` bytes.
pub fn describe(frame: &[u8], orig_len: u32) -> String {
    let mut out = String::new();
    let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12)) else {
        let _ = write!(out, "truncated frame, length {orig_len}");
        return out;
    };
    let mut off = 12;
    let mut et = be16(frame, off).unwrap_or(0);
    if et == 0x8100 {
        let _ = write!(out, "vlan {} ", be16(frame, 14).unwrap_or(0) & 0x0fff);
        off += 4;
        et = be16(frame, off).unwrap_or(0);
    }
    let l3 = off + 2;
    match et {
        0x0806 => {
            let op = be16(frame, l3 + 6).unwrap_or(0);
            let (spa, tpa) = (ip4(frame, l3 + 14), ip4(frame, l3 + 24));
            match (op, spa, tpa) {
                (1, Some(s), Some(t)) => {
                    let _ = write!(out, "ARP, Request who-has {t} tell {s}");
                }
                (2, Some(s), _) => {
                    let sha = frame.get(l3 + 8..l3 + 14).map(mac).unwrap_or_default();
                    let _ = write!(out, "ARP, Reply {s} is-at {sha}");
                }
                _ => {
                    let _ = write!(out, "ARP, op {op}");
                }
            }
        }
        0x0800 | 0x86dd => {
            let v6 = et == 0x86dd;
            let (s, d, proto, l4) = if v6 {
                (
                    ip6(frame, l3 + 8),
                    ip6(frame, l3 + 24),
                    frame.get(l3 + 6).copied(),
                    l3 + 40,
                )
            } else {
                let ihl = frame.get(l3).map_or(20, |v| usize::from(v & 0x0f) * 4);
                (
                    ip4(frame, l3 + 12),
                    ip4(frame, l3 + 16),
                    frame.get(l3 + 9).copied(),
                    l3 + ihl,
                )
            };
            let fam = if v6 { "IP6" } else { "IP" };
            let (Some(s), Some(d)) = (s, d) else {
                let _ = write!(out, "{fam} truncated");
                return out;
            };
            match proto {
                Some(p @ (6 | 17)) => {
                    let (sp, dp) = (
                        be16(frame, l4).unwrap_or(0),
                        be16(frame, l4 + 2).unwrap_or(0),
                    );
                    let name = if p == 6 { "tcp" } else { "UDP" };
                    let _ = write!(out, "{fam} {s}.{sp} > {d}.{dp}: {name}");
                }
                Some(p @ (1 | 58)) => {
                    let t = frame.get(l4).copied().unwrap_or(255);
                    let name = if p == 1 { "ICMP" } else { "ICMP6" };
                    let _ = write!(out, "{fam} {s} > {d}: {name} {}", icmp_name(v6, t));
                }
                Some(p) => {
                    let _ = write!(out, "{fam} {s} > {d}: ip-proto-{p}");
                }
                None => {
                    let _ = write!(out, "{fam} {s} > {d}");
                }
            }
        }
        _ => {
            let _ = write!(out, "{} > {}, ethertype 0x{et:04x}", mac(src), mac(dst));
        }
    }
    let _ = write!(out, ", length {orig_len}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 1;
        f[26..30].copy_from_slice(&[10, 0, 0, 2]);
        f[30..34].copy_from_slice(&[10, 0, 0, 3]);
        f[34] = 8;
        assert_eq!(
            describe(&f, 98),
            "IP 10.0.0.2 > 10.0.0.3: ICMP echo request, length 98"
        );
        for n in 0..f.len() {
            let _ = describe(&f[..n], n as u32);
        }
        let mut a = vec![0u8; 42];
        a[12..14].copy_from_slice(&[0x08, 0x06]);
        a[21] = 1;
        a[28..32].copy_from_slice(&[10, 0, 0, 2]);
        a[38..42].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(
            describe(&a, 42),
            "ARP, Request who-has 10.0.0.1 tell 10.0.0.2, length 42"
        );
    }
}
