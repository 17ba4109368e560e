//! The crate's single error type. Texts are Docker's (moby v28) wherever Docker has one, so
//! the daemon can pass them to the CLI unchanged.

use std::net::IpAddr;

use ipnet::IpNet;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// No subnet of the default pools is free.
    #[error("all predefined address pools have been fully subnetted")]
    NoMoreSubnets,
    /// A static subnet overlaps one already in use.
    #[error("invalid pool request: Pool overlaps with other one on this address space")]
    PoolOverlap,
    /// The requested address is already allocated or reserved.
    #[error("Address already in use")]
    AddressInUse(IpAddr),
    /// Every address of the pool (or of every pool of the family) is taken.
    #[error("no available addresses on this pool")]
    Exhausted,
    /// The requested address lies in no configured subnet.
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    OutOfRange(IpAddr),
    /// User configuration errors, all of them at once. One error: its text alone; several:
    /// `* e1\n* e2` (Docker's errJoin).
    #[error("invalid network config:\n{}", fmt_list(.0))]
    InvalidConfig(Vec<String>),
    /// An aux address outside its config's subnet.
    #[error("auxiliary address: ({0}:{1}) must belong to the master pool: {2}")]
    AuxOutsidePool(String, IpAddr, IpNet),
    /// The gateway (given, or `None` when the pool had to pick one) could not be reserved.
    #[error("failed to allocate gateway ({gw}): {1}", gw = fmt_opt(.0))]
    GatewayFailed(Option<IpAddr>, Box<IpamError>),
    /// An aux address could not be reserved (e.g. it equals the gateway or another aux).
    #[error("failed to allocate secondary ip address ({0}:{1}): {2}")]
    AuxFailed(String, IpAddr, Box<IpamError>),
    /// An address pool spec (daemon `default-address-pools` entry) that cannot be split.
    #[error(
        "invalid address pool {base} with size {size}: size must be between {} and {}",
        .base.prefix_len(),
        .base.max_prefix_len()
    )]
    InvalidPool { base: IpNet, size: u8 },
    /// `AddressPool::new` with an ip-range that is not inside the subnet.
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: IpNet, subnet: IpNet },
    /// `NetworkPools::allocate` for a family the network has no subnet of.
    #[error("no IPv{} subnet is configured on this network", if *.v6 { 6 } else { 4 })]
    NoSubnetForFamily { v6: bool },
}

/// Docker's errJoin: a lone error as is, several as a `* ` bulleted list.
fn fmt_list(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|e| format!("* {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Go prints a nil/empty gateway as nothing.
fn fmt_opt(addr: &Option<IpAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_one_error_is_bare() {
        let e =
            IpamError::InvalidConfig(vec!["invalid subnet x: invalid CIDR block notation".into()]);
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid subnet x: invalid CIDR block notation"
        );
    }

    #[test]
    fn invalid_config_several_errors_are_bulleted() {
        let e = IpamError::InvalidConfig(vec!["e1".into(), "e2".into()]);
        assert_eq!(e.to_string(), "invalid network config:\n* e1\n* e2");
    }

    #[test]
    fn docker_texts() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            IpamError::NoMoreSubnets.to_string(),
            "all predefined address pools have been fully subnetted"
        );
        assert_eq!(
            IpamError::PoolOverlap.to_string(),
            "invalid pool request: Pool overlaps with other one on this address space"
        );
        assert_eq!(
            IpamError::AddressInUse(ip).to_string(),
            "Address already in use"
        );
        assert_eq!(
            IpamError::Exhausted.to_string(),
            "no available addresses on this pool"
        );
        assert_eq!(
            IpamError::OutOfRange(ip).to_string(),
            "no configured subnet or ip-range contain the IP address 10.0.0.9"
        );
        assert_eq!(
            IpamError::AuxOutsidePool("a".into(), ip, net).to_string(),
            "auxiliary address: (a:10.0.0.9) must belong to the master pool: 10.0.0.0/24"
        );
        assert_eq!(
            IpamError::GatewayFailed(None, Box::new(IpamError::Exhausted)).to_string(),
            "failed to allocate gateway (): no available addresses on this pool"
        );
        assert_eq!(
            IpamError::AuxFailed("a".into(), ip, Box::new(IpamError::AddressInUse(ip))).to_string(),
            "failed to allocate secondary ip address (a:10.0.0.9): Address already in use"
        );
        assert_eq!(
            IpamError::InvalidPool { base: net, size: 8 }.to_string(),
            "invalid address pool 10.0.0.0/24 with size 8: size must be between 24 and 32"
        );
        assert_eq!(
            IpamError::NoSubnetForFamily { v6: true }.to_string(),
            "no IPv6 subnet is configured on this network"
        );
    }
}
