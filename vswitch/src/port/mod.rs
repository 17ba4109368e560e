//! Port kinds behind one interface: each gives the datapath a non-blocking fd on which a read
//! returns one virtio-net header + frame and a write sends one.

pub mod tap;
pub mod veth;

use std::fs::File;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Buffer of each end of a frame socketpair: room for bursts of 64 KiB frames.
pub const PAIR_BUFFER: libc::c_int = 4 << 20;

/// A non-blocking `SOCK_SEQPACKET` pair: one message is one virtio-net header + frame. Ports
/// served by an engine inside the daemon (NAT gateway, overlay tunnel) hand one end to the
/// datapath and keep the other.
pub fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh fds we own.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The *FORCE variants pass net.core.wmem_max (the daemon runs as root); else the plain
    // ones, capped by the sysctl.
    let set = |fd: &OwnedFd, opt: libc::c_int| {
        // SAFETY: setsockopt with an int option on our socket.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &PAIR_BUFFER as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    for fd in [&a, &b] {
        if !set(fd, libc::SO_SNDBUFFORCE) {
            set(fd, libc::SO_SNDBUF);
        }
        if !set(fd, libc::SO_RCVBUFFORCE) {
            set(fd, libc::SO_RCVBUF);
        }
    }
    Ok((a, b))
}

/// Which device connects a sandbox to its switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// A TAP created inside the sandbox (default): no kernel objects outside it.
    Tap,
    /// A veth pair whose host end is driven through AF_PACKET.
    Veth,
}

impl PortKind {
    /// Every kind, as the `io.vswitch.network.port_kind` option spells it.
    pub const ALL: [PortKind; 2] = [PortKind::Tap, PortKind::Veth];

    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Veth => "veth",
        }
    }

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
    /// A multiqueue TAP's further queues (`file` is the first): one per datapath worker
    /// serving the network ([`crate::datapath::Datapath::queues_of`]).
    pub queues: Vec<File>,
}

impl From<tap::Tap> for PortIo {
    fn from(t: tap::Tap) -> PortIo {
        let offload = t.supports_tso();
        let mut queues = t.queues.into_iter();
        PortIo {
            file: queues.next().expect("a tap has at least one queue"),
            offload,
            delete_on_close: None,
            queues: queues.collect(),
        }
    }
}
