//! vswitch: a userspace virtual switch giving containers Docker's networking.

pub mod api;
pub mod daemon;
pub mod host;
pub mod model;
pub mod store;
pub mod util;
pub mod switch;
pub mod wire;
