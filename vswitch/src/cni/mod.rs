//! `vswitch-cni`: a CNI (spec 1.0.0 and 1.1.0) plugin that attaches a runtime's network
//! namespace to a vswitch network. It is a thin client of vswitchd: the daemon creates the TAP
//! inside `CNI_NETNS` as `CNI_IFNAME` on the same attach path as its own sandboxes, and keeps
//! the attachment (container ID + ifname) in its store.
//!
//! Pure parts (no I/O, never panic on any input): [`config`] (stdin config and `CNI_*`
//! environment), [`result`] (spec result and error JSON), [`api`] (the daemon's attachment
//! requests). [`plugin`] runs the commands; [`inspect`] reads a namespace for `CHECK`.

pub mod api;
pub mod config;
pub mod inspect;
pub mod plugin;
pub mod result;

use serde::Serialize;

/// Spec versions this plugin implements (results are the same shape in both).
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0", "1.1.0"];
/// The newest supported version (VERSION's answer when asked about an unknown one).
pub const LATEST_VERSION: &str = "1.1.0";

/// Spec error codes (SPEC.md "Error").
pub const CODE_INCOMPATIBLE_VERSION: u32 = 1;
pub const CODE_UNSUPPORTED_FIELD: u32 = 2;
pub const CODE_UNKNOWN_CONTAINER: u32 = 3;
pub const CODE_INVALID_ENV: u32 = 4;
pub const CODE_IO: u32 = 5;
pub const CODE_DECODE: u32 = 6;
pub const CODE_INVALID_CONFIG: u32 = 7;
pub const CODE_TRY_AGAIN: u32 = 11;
/// STATUS: the plugin cannot serve ADD (vswitchd unreachable).
pub const CODE_NOT_READY: u32 = 50;
/// Plugin-defined (≥ 100): vswitchd refused the request (its message is in `msg`).
pub const CODE_DAEMON: u32 = 100;
/// Plugin-defined: the vswitch network does not exist and the config cannot create it.
pub const CODE_UNKNOWN_NETWORK: u32 = 101;
/// Plugin-defined: the delegated IPAM plugin failed (its error is in `details`).
pub const CODE_IPAM: u32 = 102;
/// Plugin-defined: CHECK found the namespace differing from what ADD reported.
pub const CODE_CHECK_FAILED: u32 = 103;

/// A spec error: printed as JSON on stdout, with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error JSON of the spec for `version`.
    pub fn to_json(&self, version: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        let out = Out {
            cni_version: version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        let mut b = serde_json::to_vec(&out).unwrap_or_default();
        b.push(b'\n');
        b
    }
}

/// The version to answer in: the config's when supported, else the latest.
pub fn answer_version(asked: &str) -> &str {
    SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(LATEST_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::new(CODE_INVALID_CONFIG, "bad").with_details("why");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&CniError::new(1, "x").to_json("1.1.0")).unwrap();
        assert!(v.get("details").is_none());
    }

    #[test]
    fn answers_in_a_supported_version() {
        assert_eq!(answer_version("1.0.0"), "1.0.0");
        assert_eq!(answer_version("0.3.1"), LATEST_VERSION);
    }
}
