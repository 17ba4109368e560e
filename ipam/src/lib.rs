//! Docker-compatible IP address management for vswitchd.
//!
//! Pure logic, no I/O: choosing a subnet for a new network from the default address pools,
//! validating user-typed `--subnet/--ip-range/--gateway/--aux-address` values with Docker's
//! error texts, and handing out endpoint addresses (lowest free first, like Docker's local
//! allocator). Addresses are handled as `u128` values so IPv4 and IPv6 share one code path,
//! and nothing is ever enumerated blindly, so an IPv6 /64 or 65 536 pools cost no more than
//! the number of allocations made.
//!
//! No function in this crate panics on any input.

mod addr;
mod alloc;
mod config;
mod error;
mod pools;

pub use alloc::{AddressPool, NetworkPools};
pub use config::{validate, RawSubnetConfig, SubnetConfig, OVERLAPPING_SUBNETS_MSG};
pub use error::IpamError;
pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};
pub use pools::{
    check_overlap, choose_subnet, default_global_pools, default_local_pools,
    default_local_v6_pools, overlaps, PoolSpec, DEFAULT_LOCAL_V6_BASE, DEFAULT_LOCAL_V6_SIZE,
};

/// Number of bits in an IPv4 address.
pub const IPV4_BITS: u8 = 32;
/// Number of bits in an IPv6 address.
pub const IPV6_BITS: u8 = 128;
/// IPv4 prefixes at least this long have no network or broadcast address (RFC 3021 for /31;
/// a /32 is a single host).
pub const IPV4_POINT_TO_POINT_PREFIX: u8 = 31;
