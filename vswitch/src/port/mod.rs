//! Port kinds behind one interface: each gives the datapath a non-blocking fd on which a read
//! returns one virtio-net header + frame and a write sends one.

pub mod tap;
pub mod veth;

use std::fs::File;

/// Which device connects a sandbox to its switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// A TAP created inside the sandbox (default): no kernel objects outside it.
    Tap,
    /// A veth pair whose host end is driven through AF_PACKET.
    Veth,
}

impl PortKind {
    pub fn parse(s: &str) -> Option<PortKind> {
        match s {
            "tap" => Some(PortKind::Tap),
            "veth" => Some(PortKind::Veth),
            _ => None,
        }
    }
}

/// A port's I/O side, handed to the datapath.
#[derive(Debug)]
pub struct PortIo {
    pub file: File,
    /// The device accepts GSO frames and partial checksums (else the datapath completes them).
    pub offload: bool,
    /// Host-side interface to delete when the port goes (veth); a TAP goes with its fd.
    pub delete_on_close: Option<String>,
}

impl From<tap::Tap> for PortIo {
    fn from(t: tap::Tap) -> PortIo {
        let offload = t.supports_tso();
        PortIo {
            file: t
                .queues
                .into_iter()
                .next()
                .expect("a tap has at least one queue"),
            offload,
            delete_on_close: None,
        }
    }
}
