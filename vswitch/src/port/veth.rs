//! veth + AF_PACKET ports, for hosts or runtimes that prefer veth: the peer is created
//! straight in the sandbox as `ethN`; the host end is read and written through a packet socket
//! with `PACKET_VNET_HDR`, so frames carry the same virtio-net header as on a TAP (GSO frames
//! and partial checksums arrive whole and are honoured, instead of reaching the receiver with
//! unfinished checksums).

use crate::netlink::{Netlink, NetlinkError};
use std::fs::File;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::Path;

const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Prefix of host-side veth names (`vsw` + 8 hex of the endpoint id).
pub const HOST_PREFIX: &str = "vsw";

#[derive(Debug, thiserror::Error)]
pub enum VethError {
    #[error("veth {name}: {op}: {source}")]
    Sys {
        name: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("veth {name}: {source}")]
    Netlink { name: String, source: NetlinkError },
}

fn nl_err(name: &str) -> impl FnOnce(NetlinkError) -> VethError + '_ {
    move |source| VethError::Netlink {
        name: name.to_string(),
        source,
    }
}

/// Create the pair: `host` in the caller's namespace, `peer` created directly inside `ns` (a
/// namespace path), host end up. A stale pair of the same host name (left by a killed daemon)
/// is replaced.
pub fn create_pair(host: &str, peer: &str, ns: &Path) -> Result<(), VethError> {
    let nsf = File::open(ns).map_err(|source| VethError::Sys {
        name: host.to_string(),
        op: "open netns",
        source,
    })?;
    let mut nl = Netlink::open().map_err(nl_err(host))?;
    nl.delete_link(host).map_err(nl_err(host))?;
    nl.create_veth(host, peer, nsf.as_raw_fd())
        .map_err(nl_err(host))?;
    if let Err(e) = nl.set_up(host, true) {
        let _ = nl.delete_link(host);
        return Err(nl_err(host)(e));
    }
    Ok(())
}

/// Delete the pair by its host end (the peer goes with it). Missing is fine; other failures
/// are logged, as teardown goes on regardless.
pub fn delete(host: &str) {
    if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link(host)) {
        tracing::warn!("veth {host}: {e}");
    }
}

/// A non-blocking packet socket bound to `host` with virtio-net headers.
pub fn open_socket(host: &str) -> Result<File, VethError> {
    let sys = |op: &'static str| {
        let name = host.to_string();
        move |source| VethError::Sys { name, op, source }
    };
    let cname = std::ffi::CString::new(host).map_err(|_| VethError::Sys {
        name: host.to_string(),
        op: "name",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: if_nametoindex on a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(sys("if_nametoindex")(io::Error::last_os_error()));
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(sys("socket")(io::Error::last_os_error()));
    }
    // SAFETY: fd is ours from here on.
    let file = unsafe { File::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for (opt, what) in [
        (PACKET_VNET_HDR, "PACKET_VNET_HDR"),
        (PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING"),
    ] {
        // SAFETY: setsockopt with an int.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                opt,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r != 0 {
            return Err(sys(what)(io::Error::last_os_error()));
        }
    }
    // SAFETY: zeroed sockaddr_ll, then the fields bind needs.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a sockaddr_ll of the right size.
    let r = unsafe {
        libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r != 0 {
        return Err(sys("bind")(io::Error::last_os_error()));
    }
    Ok(file)
}
