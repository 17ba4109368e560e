//! The daemon's hold on the cluster store before and after it first answers: vswitchd
//! starts whether or not etcd is up, connects in the background
//! ([`Cluster::connect_retrying`]) and records here how that goes, for `GET /info` and
//! for the error overlay operations get meanwhile.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Cluster;

/// How long an overlay operation waits for the first connection attempt still under way
/// (a daemon that just started), before it fails as "not available".
pub const FIRST_ATTEMPT_WAIT: Duration = super::CONNECT_TIMEOUT;

#[derive(Default)]
struct LinkState {
    client: Option<Cluster>,
    /// Failed connection attempts so far.
    failures: u32,
    last_error: Option<String>,
    /// The first attempt has ended (either way).
    tried: bool,
    /// Someone is trying (the supervisor runs).
    trying: bool,
}

/// What `GET /info` shows of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// `connecting` (never reached yet), `connected` or `unavailable` (reached before, not
    /// answering now).
    pub state: &'static str,
    pub failures: u32,
    pub last_error: Option<String>,
    /// The member requests go to.
    pub member: Option<String>,
}

/// A cluster store client that may not be connected yet.
#[derive(Default)]
pub struct StoreLink {
    state: Mutex<LinkState>,
    cond: Condvar,
}

impl StoreLink {
    pub fn new() -> StoreLink {
        StoreLink::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The supervisor starts trying.
    pub fn trying(&self) {
        self.lock().trying = true;
    }

    /// An attempt failed.
    pub fn failed(&self, error: String) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        s.last_error = Some(error);
        s.tried = true;
        self.cond.notify_all();
    }

    /// The store answered.
    pub fn connected(&self, client: Cluster) {
        let mut s = self.lock();
        s.client = Some(client);
        s.tried = true;
        self.cond.notify_all();
    }

    /// The client, if connected; never blocks.
    pub fn get(&self) -> Option<Cluster> {
        self.lock().client.clone()
    }

    /// The client; while the first attempt is under way, waits for it (bounded by
    /// [`FIRST_ATTEMPT_WAIT`]). The error says why there is none. Blocking: not for async
    /// code.
    pub fn wait(&self) -> Result<Cluster, String> {
        let deadline = Instant::now() + FIRST_ATTEMPT_WAIT;
        let mut s = self.lock();
        while s.client.is_none() && s.trying && !s.tried {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .cond
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        match &s.client {
            Some(c) => Ok(c.clone()),
            None => Err(match &s.last_error {
                Some(e) => format!("{e} (attempt {}, still retrying)", s.failures),
                None => "still connecting".to_string(),
            }),
        }
    }

    pub fn status(&self) -> LinkStatus {
        let s = self.lock();
        match &s.client {
            Some(c) => {
                let h = c.health();
                LinkStatus {
                    state: if h.available {
                        "connected"
                    } else {
                        "unavailable"
                    },
                    failures: s.failures,
                    last_error: h.last_error.or_else(|| s.last_error.clone()),
                    member: Some(h.member),
                }
            }
            None => LinkStatus {
                state: "connecting",
                failures: s.failures,
                last_error: s.last_error.clone(),
                member: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_while_the_first_attempt_runs() {
        let l = StoreLink::new();
        // No supervisor: no wait at all (the daemon's restore path).
        let t = Instant::now();
        assert_eq!(l.wait().unwrap_err(), "still connecting");
        assert!(t.elapsed() < Duration::from_millis(100));
        l.trying();
        l.failed("cannot connect to the cluster store: x: refused".into());
        let e = l.wait().unwrap_err();
        assert!(e.contains("refused") && e.contains("attempt 1"), "{e}");
        let st = l.status();
        assert_eq!(st.state, "connecting");
        assert_eq!(st.failures, 1);
        assert!(l.get().is_none());
    }

    #[test]
    fn a_waiter_is_woken_by_the_first_failure() {
        let l = std::sync::Arc::new(StoreLink::new());
        l.trying();
        let l2 = l.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            l2.failed("down".into());
        });
        let t = Instant::now();
        assert!(l.wait().is_err());
        assert!(t.elapsed() < FIRST_ATTEMPT_WAIT);
        h.join().unwrap();
    }
}
