//! vswitch: a userspace virtual switch giving containers Docker's networking.

pub mod api;
pub mod capture;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod gateway;
pub mod gotime;
pub mod host;
pub mod metrics;
pub mod model;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod notify;
pub mod overlay;
pub mod plugin;
pub mod port;
pub mod ports;
pub mod sandbox;
pub mod store;
pub mod switch;
pub mod util;
pub mod wire;
