//! The forwarding database: which port each source MAC was last seen on.
//!
//! Time is always passed in (`now`, milliseconds of a monotonic clock the caller owns): the
//! table never reads a clock, so tests and fuzzers drive ageing by feeding timestamps.
//!
//! - An entry ages out [`DEFAULT_AGEING`] (300 s, Linux bridge's and Docker's default) after
//!   the last frame from that MAC: at `last_seen + ageing` it is gone.
//! - The table holds at most `cap` entries ([`DEFAULT_FDB_CAP`] unless configured). A new MAC
//!   beyond the cap is not learned (its frames are still switched, and frames *to* it are
//!   flooded); known MACs keep refreshing and moving.
//! - A MAC seen on another port moves there at once.
//! - Expired entries are dropped when looked up, and by a sweep over the table done at most
//!   once per [`SWEEP_INTERVAL`] (when a new MAC finds the table full) or when the owner
//!   calls [`Fdb::expire`]. So the cost per frame stays O(1).
//! - Static entries ([`Fdb::set_static`]: remote overlay endpoints, set by the control plane)
//!   never age, do not count against the cap, and are never moved or refreshed by learning:
//!   the control plane is the only authority on where a remote MAC lives.
//! - The table starts with room for [`INITIAL_CAPACITY`] entries and grows with the number of
//!   MACs (never past what `cap` needs), so a small network costs little memory; once the
//!   population is stable, nothing allocates.

use std::collections::HashMap;
use std::time::Duration;

use super::port::PortId;
use crate::wire::MacAddr;

/// Default ageing time of an entry.
pub const DEFAULT_AGEING: Duration = Duration::from_secs(300);
/// Default maximum number of entries per network.
pub const DEFAULT_FDB_CAP: usize = 8192;
/// Minimum time between two sweeps triggered by a full table.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Entries reserved up front (the cap, if smaller); the table grows on demand.
pub const INITIAL_CAPACITY: usize = 64;

/// Milliseconds of a `Duration`, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: PortId,
    seen_ms: u64,
    /// Set by the control plane: no ageing, no cap, learning leaves it alone.
    fixed: bool,
}

/// What [`Fdb::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Known on this port: timestamp refreshed.
    Refreshed,
    /// New entry.
    New,
    /// Known on another port (or expired there): now on this one.
    Moved {
        /// The port the MAC was on.
        from: PortId,
    },
    /// Not learned: the table is at its cap.
    Full,
    /// Not learned: the MAC has a static entry (on this port or another), left unchanged.
    Static,
}

/// A MAC learning table with ageing and a cap.
#[derive(Debug, Clone)]
pub struct Fdb {
    map: HashMap<MacAddr, Entry>,
    /// Static entries among `map` (the cap applies to the others).
    statics: usize,
    cap: usize,
    ageing_ms: u64,
    last_sweep_ms: Option<u64>,
}

impl Fdb {
    /// An empty table holding at most `cap` entries, each living `ageing` after its last use.
    pub fn new(cap: usize, ageing: Duration) -> Fdb {
        Fdb {
            map: HashMap::with_capacity(cap.min(INITIAL_CAPACITY)),
            statics: 0,
            cap,
            ageing_ms: millis(ageing),
            last_sweep_ms: None,
        }
    }

    fn expired(&self, e: &Entry, now_ms: u64) -> bool {
        !e.fixed && now_ms.saturating_sub(e.seen_ms) >= self.ageing_ms
    }

    /// Pins `mac` to `port` (replacing a learned or static entry for it).
    pub fn set_static(&mut self, mac: MacAddr, port: PortId) {
        let old = self.map.insert(
            mac,
            Entry {
                port,
                seen_ms: 0,
                fixed: true,
            },
        );
        if !old.is_some_and(|e| e.fixed) {
            self.statics += 1;
        }
    }

    /// Removes the static entry of `mac`; returns its port, `None` if it had none (a learned
    /// entry is left alone).
    pub fn remove_static(&mut self, mac: &MacAddr) -> Option<PortId> {
        match self.map.get(mac) {
            Some(e) if e.fixed => {
                let port = e.port;
                self.map.remove(mac);
                self.statics -= 1;
                Some(port)
            }
            _ => None,
        }
    }

    /// The port `mac` is pinned to, if it has a static entry.
    pub fn static_port(&self, mac: &MacAddr) -> Option<PortId> {
        self.map.get(mac).filter(|e| e.fixed).map(|e| e.port)
    }

    /// Number of static entries.
    pub fn static_len(&self) -> usize {
        self.statics
    }

    /// Records that `mac` was seen as a source on `port` at `now_ms`.
    pub fn learn(&mut self, mac: MacAddr, port: PortId, now_ms: u64) -> Learned {
        let ageing_ms = self.ageing_ms;
        if let Some(e) = self.map.get_mut(&mac) {
            if e.fixed {
                return Learned::Static;
            }
            let stale = now_ms.saturating_sub(e.seen_ms) >= ageing_ms;
            let from = e.port;
            e.port = port;
            e.seen_ms = now_ms;
            return if from == port {
                if stale {
                    Learned::New
                } else {
                    Learned::Refreshed
                }
            } else {
                Learned::Moved { from }
            };
        }
        if self.len() >= self.cap {
            let due = self
                .last_sweep_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= millis(SWEEP_INTERVAL));
            if due {
                self.expire(now_ms);
            }
            if self.len() >= self.cap {
                return Learned::Full;
            }
        }
        self.map.insert(
            mac,
            Entry {
                port,
                seen_ms: now_ms,
                fixed: false,
            },
        );
        Learned::New
    }

    /// The port of `mac`, if known and not expired (an expired entry is removed).
    pub fn lookup(&mut self, mac: &MacAddr, now_ms: u64) -> Option<PortId> {
        let e = *self.map.get(mac)?;
        if self.expired(&e, now_ms) {
            self.map.remove(mac);
            None
        } else {
            Some(e.port)
        }
    }

    /// Like [`Fdb::lookup`], without removing anything.
    pub fn get(&self, mac: &MacAddr, now_ms: u64) -> Option<PortId> {
        self.map
            .get(mac)
            .filter(|e| !self.expired(e, now_ms))
            .map(|e| e.port)
    }

    /// Removes every expired entry; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let before = self.map.len();
        let ageing_ms = self.ageing_ms;
        self.map
            .retain(|_, e| e.fixed || now_ms.saturating_sub(e.seen_ms) < ageing_ms);
        self.last_sweep_ms = Some(now_ms);
        before - self.map.len()
    }

    /// Removes every entry pointing at `port`, static ones included (the port is going away).
    pub fn flush_port(&mut self, port: PortId) -> usize {
        let before = self.map.len();
        let mut statics = 0;
        self.map.retain(|_, e| {
            let gone = e.port == port;
            statics += usize::from(gone && e.fixed);
            !gone
        });
        self.statics -= statics;
        before - self.map.len()
    }

    /// Learned entries held, expired ones not yet removed included (never above the cap;
    /// static entries are not counted: see [`Fdb::static_len`]).
    pub fn len(&self) -> usize {
        self.map.len() - self.statics
    }

    /// No learned entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The ageing time.
    pub fn ageing(&self) -> Duration {
        Duration::from_millis(self.ageing_ms)
    }

    /// Live entries at `now_ms` (static ones included), in no particular order.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (MacAddr, PortId)> + '_ {
        self.map
            .iter()
            .filter(move |(_, e)| !self.expired(e, now_ms))
            .map(|(m, e)| (*m, e.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u16) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0x42, 0, 0, b[0], b[1]])
    }

    const S: u64 = 1000;

    #[test]
    fn learning_and_ageing_at_300s() {
        let mut f = Fdb::new(DEFAULT_FDB_CAP, DEFAULT_AGEING);
        assert_eq!(f.learn(mac(1), PortId(1), 0), Learned::New);
        assert_eq!(f.lookup(&mac(1), 299 * S + 999), Some(PortId(1)));
        assert_eq!(f.get(&mac(1), 300 * S), None);
        assert_eq!(f.lookup(&mac(1), 300 * S), None);
        assert!(f.is_empty(), "expired entry removed on lookup");
        // A refresh restarts the clock.
        f.learn(mac(2), PortId(2), 0);
        assert_eq!(f.learn(mac(2), PortId(2), 200 * S), Learned::Refreshed);
        assert_eq!(f.lookup(&mac(2), 450 * S), Some(PortId(2)));
        assert_eq!(f.lookup(&mac(2), 500 * S), None);
    }

    #[test]
    fn moves_and_flush() {
        let mut f = Fdb::new(16, DEFAULT_AGEING);
        f.learn(mac(1), PortId(1), 0);
        f.learn(mac(2), PortId(1), 0);
        f.learn(mac(3), PortId(2), 0);
        assert_eq!(
            f.learn(mac(1), PortId(3), 5),
            Learned::Moved { from: PortId(1) }
        );
        assert_eq!(f.lookup(&mac(1), 6), Some(PortId(3)));
        assert_eq!(f.flush_port(PortId(1)), 1);
        assert_eq!(f.lookup(&mac(2), 7), None);
        assert_eq!(f.lookup(&mac(3), 7), Some(PortId(2)));
        assert_eq!(f.entries(7).count(), 2);
    }

    #[test]
    fn cap_refuses_new_keeps_known() {
        let mut f = Fdb::new(3, DEFAULT_AGEING);
        for i in 0..3 {
            assert_eq!(f.learn(mac(i), PortId(1), 0), Learned::New);
        }
        assert_eq!(f.learn(mac(9), PortId(1), 10), Learned::Full);
        assert_eq!(f.len(), 3);
        assert_eq!(f.lookup(&mac(9), 10), None);
        // Known entries still refresh and move while full.
        assert_eq!(f.learn(mac(0), PortId(1), 100 * S), Learned::Refreshed);
        assert_eq!(
            f.learn(mac(1), PortId(2), 100 * S),
            Learned::Moved { from: PortId(1) }
        );
        // Once entries age out, a sweep (at most once per interval) makes room.
        assert_eq!(f.learn(mac(9), PortId(1), 301 * S), Learned::New);
        assert_eq!(f.len(), 3, "mac(2) expired, mac(0), mac(1), mac(9) live");
        assert_eq!(f.learn(mac(10), PortId(1), 301 * S + 1), Learned::Full);
        assert!(f.len() <= f.cap());
    }

    #[test]
    fn static_entries_pinned_uncapped_unaged() {
        let mut f = Fdb::new(1, Duration::from_secs(10));
        f.learn(mac(1), PortId(1), 0);
        f.set_static(mac(2), PortId(7));
        f.set_static(mac(1), PortId(7));
        assert_eq!((f.len(), f.static_len()), (0, 2));
        // Learning never moves or refreshes a static entry, and static ones leave the cap free.
        assert_eq!(f.learn(mac(2), PortId(1), 5), Learned::Static);
        assert_eq!(f.learn(mac(1), PortId(7), 5), Learned::Static);
        assert_eq!(f.learn(mac(3), PortId(1), 5), Learned::New);
        assert_eq!(f.learn(mac(4), PortId(1), 5), Learned::Full);
        assert_eq!(f.expire(1_000 * S), 1);
        assert_eq!(f.lookup(&mac(2), 1_000 * S), Some(PortId(7)));
        assert_eq!(f.static_port(&mac(1)), Some(PortId(7)));
        assert_eq!(f.remove_static(&mac(1)), Some(PortId(7)));
        assert_eq!(f.remove_static(&mac(1)), None);
        f.learn(mac(5), PortId(7), 1_000 * S);
        assert_eq!(
            f.remove_static(&mac(5)),
            None,
            "learned entries are not static"
        );
        assert_eq!(f.flush_port(PortId(7)), 2);
        assert_eq!((f.len(), f.static_len()), (0, 0));
    }

    #[test]
    fn explicit_expire() {
        let mut f = Fdb::new(8, Duration::from_secs(10));
        f.learn(mac(1), PortId(0), 0);
        f.learn(mac(2), PortId(0), 5 * S);
        assert_eq!(f.expire(10 * S), 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f.ageing(), Duration::from_secs(10));
    }
}
