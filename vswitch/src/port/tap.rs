//! TAP devices with virtio-net headers, multiqueue and offloads.
//!
//! Our own ~150-line ioctl wrapper rather than the `tun-tap` crate: tun-tap sets only
//! IFF_TAP|IFF_NO_PI (no IFF_VNET_HDR, no IFF_MULTI_QUEUE, no TUNSETOFFLOAD), caches the name
//! (stale after a rename) and pulls tokio-core 0.1. Without vnet headers every frame is at most
//! one MTU, which caps a userspace switch near 1.5 Gbit/s; with them 64 KiB TSO frames cross
//! the switch in one read and one write. tun-rs covers this but brings a second nix and another
//! netlink-packet-route, and its batch helpers are L3-only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};

pub const TUN_PATH: &str = "/dev/net/tun";
/// Size of `struct virtio_net_hdr` (no mergeable buffers).
pub const VNET_HDR_LEN: usize = 10;
/// Queues opened per TAP by default; a network spread over workers (`--tap-queues`) gets one
/// per worker ([`crate::datapath::Datapath::queues_of`]).
pub const DEFAULT_QUEUES: usize = 1;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// Offloads the kernel granted the last TAP made (for `/info`); `OFFLOADS_KNOWN` marks set.
static LAST_OFFLOADS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
const OFFLOADS_KNOWN: u32 = 1 << 31;

/// The offloads (`csum`, `tso4`, `tso6`, `tso_ecn`, `uso4`, `uso6`) the kernel granted the
/// last TAP created by this process; `None` before the first one.
pub fn granted_offloads() -> Option<Vec<&'static str>> {
    let v = LAST_OFFLOADS.load(std::sync::atomic::Ordering::Relaxed);
    if v & OFFLOADS_KNOWN == 0 {
        return None;
    }
    let names = [
        (TUN_F_CSUM, "csum"),
        (TUN_F_TSO4, "tso4"),
        (TUN_F_TSO6, "tso6"),
        (TUN_F_TSO_ECN, "tso_ecn"),
        (TUN_F_USO4, "uso4"),
        (TUN_F_USO6, "uso6"),
    ];
    Some(
        names
            .iter()
            .filter(|(f, _)| v & f != 0)
            .map(|(_, n)| *n)
            .collect(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap {name}: open {TUN_PATH}: {source}")]
    Open { name: String, source: io::Error },
    #[error("tap {name}: {op}: {source}")]
    Ioctl {
        name: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("tap name {0:?} is not a valid interface name")]
    BadName(String),
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One TAP device: its queues (each an fd) and whether frames carry a virtio-net header.
#[derive(Debug)]
pub struct Tap {
    pub name: String,
    pub queues: Vec<File>,
    pub vnet_hdr: bool,
    /// Offloads the kernel accepted (TSO/USO/CSUM): frames towards this TAP may be GSO.
    pub offloads: u32,
}

impl Tap {
    /// Create (in the calling thread's network namespace) a TAP called `name` with `queues`
    /// queues, non-blocking, with vnet headers and checksum/TSO/USO offloads when possible.
    pub fn create(name: &str, queues: usize) -> Result<Tap, TapError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(TapError::BadName(name.to_string()));
        }
        let queues = queues.max(1);
        let mut files = Vec::with_capacity(queues);
        for _ in 0..queues {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(TUN_PATH)
                .map_err(|source| TapError::Open {
                    name: name.to_string(),
                    source,
                })?;
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE,
                _pad: [0; 22],
            };
            req.name[..name.len()].copy_from_slice(name.as_bytes());
            ioctl(
                f.as_raw_fd(),
                TUNSETIFF,
                &mut req as *mut IfReq as usize,
                name,
                "TUNSETIFF",
            )?;
            let mut sz: libc::c_int = VNET_HDR_LEN as libc::c_int;
            ioctl(
                f.as_raw_fd(),
                TUNSETVNETHDRSZ,
                &mut sz as *mut libc::c_int as usize,
                name,
                "TUNSETVNETHDRSZ",
            )?;
            files.push(f);
        }
        // USO needs kernel ≥ 6.2; fall back to TCP offloads, then to checksum only.
        let want = [
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
            TUN_F_CSUM,
            0,
        ];
        let mut offloads = 0;
        for w in want {
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            if unsafe { libc::ioctl(files[0].as_raw_fd(), TUNSETOFFLOAD as _, w as libc::c_ulong) }
                == 0
            {
                offloads = w;
                break;
            }
        }
        LAST_OFFLOADS.store(
            offloads | OFFLOADS_KNOWN,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Tap {
            name: name.to_string(),
            queues: files,
            vnet_hdr: true,
            offloads,
        })
    }

    pub fn supports_tso(&self) -> bool {
        self.offloads & TUN_F_TSO4 != 0
    }
}

/// Make a TAP outlive its fds (`on`), or go with the last one again. A persistent TAP
/// stays where it is (e.g. inside a container) while the daemon restarts; `Tap::create` with
/// its name, in its namespace, attaches to it again.
pub fn set_persist(queue: &File, on: bool) -> Result<(), TapError> {
    // SAFETY: TUNSETPERSIST takes its flag by value.
    if unsafe {
        libc::ioctl(
            queue.as_raw_fd(),
            TUNSETPERSIST as _,
            libc::c_ulong::from(on),
        )
    } != 0
    {
        return Err(TapError::Ioctl {
            name: String::new(),
            op: "TUNSETPERSIST",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn ioctl(
    fd: RawFd,
    req: libc::c_ulong,
    arg: usize,
    name: &str,
    op: &'static str,
) -> Result<(), TapError> {
    // SAFETY: `arg` points to a live, correctly sized struct for `req`.
    if unsafe { libc::ioctl(fd, req as _, arg) } != 0 {
        return Err(TapError::Ioctl {
            name: name.to_string(),
            op,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
