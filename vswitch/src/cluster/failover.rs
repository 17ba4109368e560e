//! Reaching a multi-member etcd through member failures and outages, kept apart from the I/O:
//!
//! - [`Members`]: one client per member URL; requests stick to one member and move to the
//!   next when it fails (as etcd's Go client does). etcd-client's own balanced channel picks
//!   a member at random per request and keeps picking a dead one (its lazy connections never
//!   leave the balancer), so about one request in three fails while a member is down.
//! - [`not_sent`]: which failures certainly did not reach etcd, so that a write may be sent
//!   again to another member without being applied twice.
//! - [`next_backoff`]: the exponential backoff of every retry loop (first connection,
//!   keep-alive, watch).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Attempts of one request across members (reads, and writes that were not sent): with
/// [`RETRY_PAUSE`] they span about 2 s, an etcd leader election after the leader's loss.
pub const RETRY_ATTEMPTS: u32 = 10;
/// Pause before the n-th retry of a request: n × this.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Bound on one attempt of a request that may be sent again (a member that hangs is left
/// for the next one before the whole request's bound runs out).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// First pause between attempts to reach a store that does not answer (doubles each time).
pub const RECONNECT_MIN: Duration = Duration::from_millis(200);
/// Longest pause between attempts to reach the store: an etcd that comes back is seen
/// within this.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The pause after `d`: doubled, at most `max`.
pub fn next_backoff(d: Duration, max: Duration) -> Duration {
    d.saturating_mul(2).min(max)
}

/// Whether a failure with this gRPC code and message certainly left etcd unchanged: the
/// connection could not be made, or the member had no leader (it refuses before applying).
/// Everything else (a connection reset mid-request, a timeout) may have been applied.
pub fn not_sent(code: i32, message: &str) -> bool {
    // 14 = Unavailable; tonic maps connect errors to it, etcd uses it for "no leader".
    const MARKS: [&str; 6] = [
        "tcp connect error",
        "error trying to connect",
        "connection refused",
        "dns error",
        "no leader",
        "not ready",
    ];
    let m = message.to_ascii_lowercase();
    (code == 14 || code == 2) && MARKS.iter().any(|k| m.contains(k))
}

/// Whether an "Unknown" gRPC failure is a broken connection (hyper/h2 texts), not an
/// answer of etcd.
pub fn broken_connection(message: &str) -> bool {
    const MARKS: [&str; 6] = [
        "transport error",
        "connection",
        "broken pipe",
        "h2 protocol error",
        "stream closed",
        "not ready",
    ];
    let m = message.to_ascii_lowercase();
    MARKS.iter().any(|k| m.contains(k))
}

/// Member URLs and the one requests go to now.
#[derive(Debug)]
pub struct Members {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Members {
    pub fn new(urls: Vec<String>) -> Members {
        Members {
            urls,
            current: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The member requests go to.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst) % self.urls.len().max(1)
    }

    pub fn url(&self, i: usize) -> &str {
        self.urls.get(i).map_or("", String::as_str)
    }

    /// Member `i` failed: requests move to the next one, unless another request already
    /// moved them. Returns the member moved to.
    pub fn failed(&self, i: usize) -> Option<usize> {
        let n = self.urls.len();
        if n < 2 {
            return None;
        }
        let next = (i + 1) % n;
        self.current
            .compare_exchange(i, next, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let mut d = RECONNECT_MIN;
        let mut seen = vec![d];
        for _ in 0..10 {
            d = next_backoff(d, RECONNECT_MAX);
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(400));
        assert_eq!(*seen.last().unwrap(), RECONNECT_MAX);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(next_backoff(Duration::MAX, RECONNECT_MAX), RECONNECT_MAX);
    }

    #[test]
    fn only_unsent_failures_are_resent() {
        assert!(not_sent(
            14,
            "tcp connect error: Connection refused (os error 111)"
        ));
        assert!(not_sent(14, "etcdserver: no leader"));
        assert!(!not_sent(14, "transport error"));
        assert!(!not_sent(14, "etcdserver: request timed out"));
        assert!(!not_sent(4, "Timeout expired"));
        assert!(!not_sent(9, "etcdserver: no leader"));
        assert!(broken_connection("transport error"));
        assert!(broken_connection("error reading a body from connection"));
        assert!(!broken_connection(
            "etcdserver: mvcc: required revision is a future revision"
        ));
    }

    #[test]
    fn members_rotate_once_per_failure() {
        let m = Members::new(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(m.current(), 0);
        assert_eq!(m.failed(0), Some(1));
        // A second request that saw member 0 fail does not skip member 1.
        assert_eq!(m.failed(0), None);
        assert_eq!(m.current(), 1);
        assert_eq!(m.failed(1), Some(2));
        assert_eq!(m.failed(2), Some(0));
        let one = Members::new(vec!["a".into()]);
        assert_eq!(one.failed(0), None);
        assert_eq!(one.current(), 0);
        assert_eq!(Members::new(vec![]).current(), 0);
    }
}
