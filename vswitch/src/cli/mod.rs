//! `vswitch`: the command-line client of `vswitchd`.
pub mod client;
pub mod gojson;
pub mod gotime;
pub mod goval;
pub mod opts;
pub mod tabwriter;
pub mod template;
#[cfg(test)]
pub mod testutil;
