//! Packet capture from inside the datapath (`vswitch capture`).
//!
//! A capture is a [`Tap`] held by the datapath worker that owns the network and a
//! [`CaptureReader`] held by whoever streams the pcap out (the API). They share two bounded
//! queues of recycled buffers: the worker takes a free buffer, copies a matching frame into
//! it and queues it; the reader writes it out and gives the buffer back. The worker never
//! waits: with no free buffer (a slow or absent reader) the frame is not captured and counted
//! in [`Tap::dropped`]. After warm-up nothing is allocated per frame (a buffer grows once to
//! the largest frame it has held, at most the snap length). With no capture active the
//! datapath pays one `is_empty` branch per batch.
//!
//! What a capture sees: on a network, every frame a port hands to the switch plus the frames
//! the switch builds itself (ARP answers), each once; on one port (a container's `ethN`), what
//! the port sends to the switch and what the switch sends to it.

pub mod filter;
pub mod pcap;
pub mod summary;

pub use filter::{Filter, FilterError};

use crate::switch::PortId;
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Frames a capture holds in flight between the worker and the reader.
pub const QUEUE_FRAMES: usize = 256;
/// Bytes of each frame kept by default (tcpdump's default snap length is larger, but no
/// frame from a TAP is longer than 64 KiB plus headers).
pub const DEFAULT_SNAPLEN: u32 = 65_535;
/// Room reserved in each buffer up front; it grows (once) for longer frames.
const INITIAL_BUF: usize = 2048;

/// One captured frame.
#[derive(Debug)]
pub struct Captured {
    /// Wall-clock time of capture, since the Unix epoch.
    pub ts: Duration,
    /// Length of the frame on the wire (may exceed `data.len()` when cut at the snap length).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Which frames a tap wants, besides its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every frame entering the switch, and the switch's own replies.
    Network,
    /// What one port sends and receives.
    Port(PortId),
}

/// The datapath's end of a capture.
#[derive(Debug)]
pub struct Tap {
    scope: Scope,
    filter: Filter,
    snaplen: usize,
    full: Sender<Captured>,
    free: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    reader_gone: Arc<AtomicBool>,
    closed: bool,
}

/// The reader's end of a capture. Dropping it ends the capture (the worker notices on the
/// next matching frame or tick and forgets the tap).
#[derive(Debug)]
pub struct CaptureReader {
    full: Receiver<Captured>,
    free: Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    reader_gone: Arc<AtomicBool>,
    snaplen: u32,
}

impl Drop for CaptureReader {
    fn drop(&mut self) {
        self.reader_gone.store(true, Ordering::Relaxed);
    }
}

/// A new capture of `scope` keeping `snaplen` bytes (clamped to 1..=[`DEFAULT_SNAPLEN`]) of
/// each frame `filter` accepts, with [`QUEUE_FRAMES`] buffers.
pub fn channel(scope: Scope, filter: Filter, snaplen: u32) -> (Tap, CaptureReader) {
    let snaplen = snaplen.clamp(1, DEFAULT_SNAPLEN);
    let (full_tx, full_rx) = channel::bounded(QUEUE_FRAMES);
    let (free_tx, free_rx) = channel::bounded(QUEUE_FRAMES);
    for _ in 0..QUEUE_FRAMES {
        let _ = free_tx.try_send(Vec::with_capacity(INITIAL_BUF.min(snaplen as usize)));
    }
    let dropped = Arc::new(AtomicU64::new(0));
    let reader_gone = Arc::new(AtomicBool::new(false));
    (
        Tap {
            scope,
            filter,
            snaplen: snaplen as usize,
            full: full_tx,
            free: free_rx,
            dropped: dropped.clone(),
            reader_gone: reader_gone.clone(),
            closed: false,
        },
        CaptureReader {
            full: full_rx,
            free: free_tx,
            dropped,
            reader_gone,
            snaplen,
        },
    )
}

impl Tap {
    /// Another datapath end of the same capture, for another worker serving the network:
    /// both feed the one reader.
    pub fn share(&self) -> Tap {
        Tap {
            scope: self.scope,
            filter: self.filter.clone(),
            snaplen: self.snaplen,
            full: self.full.clone(),
            free: self.free.clone(),
            dropped: self.dropped.clone(),
            reader_gone: self.reader_gone.clone(),
            closed: self.closed,
        }
    }

    /// Whether a frame entering the switch from `port` is for this tap.
    #[inline]
    pub fn wants_rx(&self, port: PortId) -> bool {
        match self.scope {
            Scope::Network => true,
            Scope::Port(p) => p == port,
        }
    }

    /// Whether a frame the switch sends to `port` is for this tap (`reply`: built by the
    /// switch, so no port sent it in).
    #[inline]
    pub fn wants_tx(&self, port: PortId, reply: bool) -> bool {
        match self.scope {
            Scope::Network => reply,
            Scope::Port(p) => p == port,
        }
    }

    /// Offers a frame: copied when the filter takes it and a buffer is free, else counted as
    /// dropped. Returns true when it was dropped for want of room. Never blocks.
    pub fn offer(&mut self, frame: &[u8]) -> bool {
        if self.closed || !self.filter.matches(frame) {
            return false;
        }
        let mut buf = match self.free.try_recv() {
            Ok(b) => b,
            Err(channel::TryRecvError::Empty) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(channel::TryRecvError::Disconnected) => {
                self.closed = true;
                return false;
            }
        };
        let keep = frame.len().min(self.snaplen);
        buf.clear();
        buf.extend_from_slice(&frame[..keep]);
        let c = Captured {
            ts: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data: buf,
        };
        match self.full.try_send(c) {
            Ok(()) => false,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => {
                self.closed = true;
                false
            }
        }
    }

    /// What this tap captures.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The reader is gone: the worker may forget this tap.
    pub fn is_closed(&self) -> bool {
        self.closed || self.reader_gone.load(Ordering::Relaxed)
    }

    /// Frames not captured for want of room so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl CaptureReader {
    /// The next frame, waiting at most `timeout`; `Err(true)` when the tap is gone (network
    /// or port removed), `Err(false)` on timeout.
    pub fn recv(&self, timeout: Duration) -> Result<Captured, bool> {
        match self.full.recv_timeout(timeout) {
            Ok(c) => Ok(c),
            Err(channel::RecvTimeoutError::Timeout) => Err(false),
            Err(channel::RecvTimeoutError::Disconnected) => Err(true),
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Option<Captured> {
        self.full.try_recv().ok()
    }

    /// Gives a frame's buffer back to the worker.
    pub fn recycle(&self, c: Captured) {
        let _ = self.free.try_send(c.data);
    }

    /// Frames the worker could not capture because this reader was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The snap length in force.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(i: usize) -> PortId {
        PortId(i as u16)
    }

    #[test]
    fn slow_reader_drops_never_blocks() {
        let (mut tap, reader) = channel(Scope::Network, Filter::default(), 100);
        let frame = [0xabu8; 300];
        let mut dropped = 0;
        for _ in 0..QUEUE_FRAMES + 10 {
            if tap.offer(&frame) {
                dropped += 1;
            }
        }
        assert_eq!(dropped, 10);
        assert_eq!(reader.dropped(), 10);
        let c = reader.try_recv().unwrap();
        assert_eq!((c.data.len(), c.orig_len), (100, 300));
        reader.recycle(c);
        assert!(!tap.offer(&frame), "a recycled buffer takes the next frame");
        assert!(!tap.is_closed());
        drop(reader);
        assert!(tap.is_closed());
        assert!(!tap.offer(&frame));
    }

    #[test]
    fn scope_and_filter() {
        let (mut tap, reader) = channel(Scope::Port(port(2)), Filter::parse("arp").unwrap(), 0);
        assert!(tap.wants_rx(port(2)) && !tap.wants_rx(port(1)));
        assert!(tap.wants_tx(port(2), false) && !tap.wants_tx(port(1), true));
        let (net, _r) = channel(Scope::Network, Filter::default(), 0);
        assert!(net.wants_rx(port(1)) && net.wants_tx(port(1), true));
        assert!(!net.wants_tx(port(1), false));
        let mut f = [0u8; 60];
        tap.offer(&f);
        assert!(reader.try_recv().is_none(), "not ARP");
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        tap.offer(&f);
        assert_eq!(
            reader.try_recv().unwrap().data.len(),
            1,
            "snaplen clamps to 1"
        );
    }
}
