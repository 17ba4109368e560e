//! Pacing of published-port connections into a container.
//!
//! The host listener accepts a burst at once (its backlog is large), but the container's server
//! may listen with a small backlog (Python's `socketserver`: 5). Linux drops a SYN, or the
//! handshake's last ACK, when that accept queue is full, and the relay's side (smoltcp) only
//! retransmits after 1 s, 3 s, 7 s. So at most [`OPENING_WINDOW`] relay connections per
//! container address are *opening* at once: from their SYN until the server shows it accepted
//! (it sent data or a FIN, or the connection ended), or [`OPENING_RELEASE`] after the
//! handshake (a server that waits for a client that says nothing first). An unanswered SYN
//! never times out here: the server may be dropping SYNs, and more would only be dropped too.
//! The rest wait here, their client's bytes held by the engine; accepted connections no longer
//! count, so the server's queue holds at most the opening ones. Pure bookkeeping: no I/O, no
//! clock of its own.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::nat::FlowId;

/// Relay connections per container address between their SYN and the server's first answer:
/// fits the smallest common listen backlog (5, an accept queue of 6) with room to spare for
/// clients that reach the container directly.
pub const OPENING_WINDOW: usize = 4;
/// An opening connection with no answer from the server this long after its handshake stops
/// counting (the server accepted it and waits for its client, or is slow): the next waiting
/// one starts. With handshakes done, the pacing rate is at least [`OPENING_WINDOW`] per this
/// period.
pub const OPENING_RELEASE: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Dest {
    /// Started flows not yet answered, with the time their handshake completed (at most
    /// [`OPENING_WINDOW`]).
    opening: Vec<(FlowId, Option<Duration>)>,
    /// Flows waiting for a slot, oldest first.
    waiting: VecDeque<FlowId>,
}

/// Per-container-address windows of opening relay connections. See the [module
/// documentation](self).
#[derive(Debug, Default)]
pub struct Pacer {
    dests: HashMap<SocketAddr, Dest>,
}

impl Pacer {
    /// A new relay connection to `dest`: it waits until [`Pacer::start`] hands it out.
    pub fn enqueue(&mut self, dest: SocketAddr, flow: FlowId) {
        self.dests.entry(dest).or_default().waiting.push_back(flow);
    }

    /// Releases timed-out opening flows, then moves waiting flows into free slots; returns
    /// the flows to start now (into `out`, with their container address).
    pub fn start(&mut self, now: Duration, out: &mut Vec<(SocketAddr, FlowId)>) {
        for (dest, d) in self.dests.iter_mut() {
            d.opening
                .retain(|(_, t)| t.is_none_or(|t| now.saturating_sub(t) < OPENING_RELEASE));
            while d.opening.len() < OPENING_WINDOW {
                let Some(flow) = d.waiting.pop_front() else {
                    break;
                };
                d.opening.push((flow, None));
                out.push((*dest, flow));
            }
        }
        self.dests
            .retain(|_, d| !d.opening.is_empty() || !d.waiting.is_empty());
    }

    /// `flow`'s handshake completed at `now`: it stops counting [`OPENING_RELEASE`] later
    /// unless answered first.
    pub fn established(&mut self, dest: SocketAddr, flow: FlowId, now: Duration) {
        if let Some(d) = self.dests.get_mut(&dest) {
            for (f, t) in d.opening.iter_mut() {
                if *f == flow && t.is_none() {
                    *t = Some(now);
                }
            }
        }
    }

    /// `flow` was answered, or is gone (also when still waiting): it stops counting. Call
    /// [`Pacer::start`] afterwards to fill its slot.
    pub fn release(&mut self, dest: SocketAddr, flow: FlowId) {
        let Some(d) = self.dests.get_mut(&dest) else {
            return;
        };
        d.opening.retain(|(f, _)| *f != flow);
        d.waiting.retain(|f| *f != flow);
        if d.opening.is_empty() && d.waiting.is_empty() {
            self.dests.remove(&dest);
        }
    }

    /// Whether `flow` to `dest` is opening (started and not yet answered).
    pub fn is_opening(&self, dest: SocketAddr, flow: FlowId) -> bool {
        self.dests
            .get(&dest)
            .is_some_and(|d| d.opening.iter().any(|(f, _)| *f == flow))
    }

    /// When a waiting flow may start because an opening one times out (none: no flow waits,
    /// or only for answers and handshakes).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.dests
            .values()
            .filter(|d| !d.waiting.is_empty() && d.opening.len() >= OPENING_WINDOW)
            .flat_map(|d| {
                d.opening
                    .iter()
                    .filter_map(|(_, t)| t.map(|t| t + OPENING_RELEASE))
            })
            .min()
    }

    /// Flows waiting for a slot (all destinations).
    pub fn waiting(&self) -> usize {
        self.dests.values().map(|d| d.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    #[test]
    fn window_per_destination_release_and_timeout() {
        let a: SocketAddr = "172.18.0.2:80".parse().unwrap();
        let b: SocketAddr = "172.18.0.3:80".parse().unwrap();
        let mut p = Pacer::default();
        for f in 1..=6 {
            p.enqueue(a, f);
        }
        p.enqueue(b, 7);
        let mut out = Vec::new();
        p.start(ms(0), &mut out);
        out.sort();
        let mut want: Vec<_> = (1..=4).map(|f| (a, f)).collect();
        want.push((b, 7));
        want.sort();
        assert_eq!(out, want);
        assert_eq!(p.waiting(), 2);
        assert!(p.is_opening(a, 1) && !p.is_opening(a, 5));
        // Handshakes pending: no timeout.
        assert_eq!(p.next_deadline(), None);
        p.start(ms(5000), &mut out);
        assert_eq!(out.len(), 5);
        for f in [1, 3, 4] {
            p.established(a, f, ms(0));
        }
        assert_eq!(p.next_deadline(), Some(ms(100)));
        // An answer frees a slot at once.
        p.release(a, 2);
        out.clear();
        p.start(ms(10), &mut out);
        assert_eq!(out, [(a, 5)]);
        // A waiting flow that goes away never starts.
        p.release(a, 6);
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.next_deadline(), None);
        p.enqueue(a, 8);
        p.established(a, 5, ms(50));
        // Timeout: the slots of 1, 3, 4 (established at 0) free at 100 ms.
        out.clear();
        p.start(ms(99), &mut out);
        assert!(out.is_empty());
        p.start(ms(100), &mut out);
        assert_eq!(out, [(a, 8)]);
        for f in [1, 3, 4, 5, 7, 8] {
            p.release(a, f);
            p.release(b, f);
        }
        assert!(p.dests.is_empty());
    }
}
