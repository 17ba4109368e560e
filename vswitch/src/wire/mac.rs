//! Ethernet (EUI-48) MAC addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::{check_len, Error, Result};

/// Length of a MAC address in bytes.
pub const MAC_LEN: usize = 6;

/// First two bytes of the MACs Docker derives from an IPv4 address (`02:42` + the four bytes).
pub const DOCKER_MAC_PREFIX: [u8; 2] = [0x02, 0x42];

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; MAC_LEN]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; MAC_LEN]);
    /// `00:00:00:00:00:00`, never a valid source.
    pub const ZERO: MacAddr = MacAddr([0; MAC_LEN]);

    /// Reads a MAC from the first six bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> Result<MacAddr> {
        check_len(b, MAC_LEN)?;
        let mut a = [0u8; MAC_LEN];
        a.copy_from_slice(&b[..MAC_LEN]);
        Ok(MacAddr(a))
    }

    /// Docker's MAC for an endpoint address: `02:42` followed by the four IPv4 bytes
    /// (172.17.0.2 → `02:42:ac:11:00:02`).
    pub fn from_ipv4(ip: Ipv4Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([
            DOCKER_MAC_PREFIX[0],
            DOCKER_MAC_PREFIX[1],
            o[0],
            o[1],
            o[2],
            o[3],
        ])
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; MAC_LEN] {
        self.0
    }

    /// The six bytes as a slice.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Group bit set (multicast, which includes broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// All zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Locally administered bit set (Docker's `02:42:…` MACs are).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// A valid *source* address: unicast and not all zero (the rule of Linux's
    /// `is_valid_ether_addr`).
    pub fn is_valid_source(&self) -> bool {
        self.is_unicast() && !self.is_zero()
    }

    /// IEEE 802.1D reserved link-local group `01:80:c2:00:00:00`–`0f` (STP, pause, LACP,
    /// 802.1X …), which a bridge must not forward.
    pub fn is_link_local_group(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }
}

impl From<[u8; MAC_LEN]> for MacAddr {
    fn from(a: [u8; MAC_LEN]) -> Self {
        MacAddr(a)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `02:42:ac:11:00:02` (also with `-` separators, any case).
    fn from_str(s: &str) -> Result<MacAddr> {
        let mut out = [0u8; MAC_LEN];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(Error::Malformed("mac address"))?;
            if p.len() != 2 {
                return Err(Error::Malformed("mac address"));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| Error::Malformed("mac address"))?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed("mac address"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_mac_from_ipv4_and_display() {
        let m = MacAddr::from_ipv4(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02:42:AC:11:00:02".parse::<MacAddr>(), Ok(m));
        assert!(m.is_unicast() && m.is_local() && m.is_valid_source());
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_valid_source());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_link_local_group());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_link_local_group());
    }

    #[test]
    fn parse_errors() {
        for s in [
            "",
            "02:42",
            "02:42:ac:11:00:02:03",
            "0:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
        assert!(MacAddr::from_bytes(&[1, 2, 3]).is_err());
    }
}
