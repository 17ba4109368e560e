//! The cluster store for multi-host overlay networks (issue #5): networks, VNIs, overlay IPAM
//! and endpoint locations shared by every host through etcd v3.
//!
//! # Key layout
//!
//! Under a prefix (default `/vswitch`, or the path of `etcd://HOST:PORT/PREFIX`):
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `networks/<id>` | [`NetworkRecord`] (JSON) | global |
//! | `netnames/<name>` | network id | global |
//! | `vni/<vni>` | network id | global |
//! | `subnets/<cidr>` | network id (a global network's subnet) | global |
//! | `ipam/<net>/<ip>` | [`IpamRecord`] `{owner, host}` | leased by the allocating host |
//! | `endpoints/<net>/<epid>` | [`EndpointRecord`] (JSON) | leased by the publishing host |
//! | `epnames/<net>/<name>` | endpoint id | leased by the publishing host |
//!
//! Components taken from user input are escaped (`%` → `%25`, `/` → `%2F`, see [`keys`]).
//!
//! # Protocol
//!
//! - Every claim (network name, VNI, address, endpoint name) is one transaction that creates
//!   the key only if it is absent (`version == 0`); an automatic choice that loses a race
//!   lists the taken keys again and retries (bounded), so two hosts never hand out the same
//!   VNI or address.
//! - Each host holds one lease (TTL [`DEFAULT_TTL`]) kept alive every TTL/3. Its addresses,
//!   endpoint records and endpoint names are attached to it: when a host dies they vanish
//!   within the TTL and every watcher sees `EndpointDeleted`. [`Cluster::close`] revokes the
//!   lease at once. If the lease is lost while the host is alive (etcd unreachable longer
//!   than the TTL), a new lease is granted and the keys this host still holds (kept in
//!   memory) are put again, unless another host claimed one meanwhile.
//! - Watchers get a snapshot (networks first, then endpoints), `Synced`, then live changes
//!   from the snapshot's revision + 1; a broken watch is re-made with backoff from the
//!   revision after the last one delivered (no event lost, none twice); only when etcd
//!   compacted that revision away is a fresh snapshot sent, preceded by `Resync`.
//! - With several members, requests stick to one and move to the next when it fails;
//!   reads and requests that never left are sent again, writes that may have been
//!   applied are not ([`failover`]). The keep-alive, after a failed round, retries from
//!   100 ms doubling up to TTL/3, so a member's loss is routed around within the TTL.
//!   Deletes that could not be made while etcd was away are made on a later round.
//!
//! The pure parts (key layout, records, event decoding, choice of the lowest free VNI or
//! address) live in [`keys`], [`records`] and [`alloc`], apart from the etcd I/O here.

pub mod alloc;
pub mod failover;
pub mod keys;
pub mod link;
pub mod records;

pub use alloc::{check_vni, choose_ip, choose_vni, VNI_FIRST, VNI_MAX};
pub use failover::{RECONNECT_MAX, RECONNECT_MIN};
pub use keys::{Key, Keys};
pub use records::{
    decode_change, snapshot_events, ChangeKind, ClusterEvent, EndpointRecord, IpamRecord,
    NetworkRecord,
};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use failover::{Members, ATTEMPT_TIMEOUT, RETRY_ATTEMPTS, RETRY_PAUSE};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use ipam::IpamError;
use ipnet::IpNet;
use tokio::sync::{mpsc, watch, RwLock};

use records::encode;

/// Lease TTL by default: a crashed host's endpoints vanish within this.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Key prefix by default.
pub const DEFAULT_PREFIX: &str = "/vswitch";
/// etcd's client port, when a URL gives none.
pub const DEFAULT_PORT: u16 = 2379;
/// Bound on connecting (and granting the first lease).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each request to etcd.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on revoking the lease at shutdown (a dead store must not hold the daemon up).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts of an automatic VNI/address choice that keeps losing races.
const ALLOC_ATTEMPTS: usize = 256;
/// Events buffered per watcher.
const WATCH_CHANNEL: usize = 1024;
/// Pauses between re-made watches and keep-alive streams (doubling).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// HTTP/2 pings, so that a watch on a dead etcd breaks instead of hanging.
const H2_KEEPALIVE: Duration = Duration::from_secs(5);

/// Everything that can go wrong. [`ClusterError::status`] maps it to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid cluster store URL {0:?}: expected etcd://HOST:PORT[,HOST:PORT][/PREFIX]")]
    BadUrl(String),
    #[error("cannot connect to the cluster store: {0}")]
    Connect(String),
    /// etcd did not answer (down, unreachable, timed out).
    #[error("cluster store is not available: {0}")]
    Unavailable(String),
    /// etcd answered with an error.
    #[error("cluster store error: {0}")]
    Etcd(String),
    /// This host's lease expired and could not be renewed in time for the request.
    #[error("cluster store: this host's lease was lost: {0}")]
    LeaseLost(String),
    #[error("cluster store: undecodable record {0}")]
    Decode(String),
    /// [`Cluster::close`] was called.
    #[error("cluster store client is closed")]
    Closed,
    /// Too many lost races in a row.
    #[error("cluster store: {0}: gave up after {ALLOC_ATTEMPTS} attempts (contention)")]
    Contention(String),
    #[error("network with name {0} already exists")]
    NetworkNameTaken(String),
    /// Another global network holds this subnet (Docker's text).
    #[error("invalid pool request: Pool overlaps with other one on this address space ({0})")]
    SubnetTaken(String),
    /// Docker's text (see [`NetworkInUse`]).
    #[error("{0}")]
    NetworkInUse(NetworkInUse),
    #[error("VNI {0} is already in use")]
    VniTaken(u32),
    #[error("invalid VNI {0}: must be between 1 and 16777215")]
    BadVni(u32),
    #[error("no free VNI left")]
    VniExhausted,
    /// Docker's text.
    #[error("Address already in use")]
    AddressInUse(IpAddr),
    /// Docker's text.
    #[error("no available addresses on this pool")]
    PoolExhausted,
    /// Other address errors (requested address outside the subnet, bad ip-range).
    #[error(transparent)]
    Ipam(IpamError),
    /// Docker's text.
    #[error("service endpoint with name {0} already exists")]
    EndpointNameTaken(String),
}

/// What keeps a network from being removed: its name and the (name, id) of the endpoint
/// records found. Displays as Docker's `error while removing network: network mynet has
/// active endpoints (name:"web1" id:"5063978cc7d6")` (ids cut to 12, joined by `, `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInUse {
    pub name: String,
    pub endpoints: Vec<(String, String)>,
}

impl std::fmt::Display for NetworkInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let eps = self
            .endpoints
            .iter()
            .map(|(name, id)| {
                format!(
                    "name:{name:?} id:{:?}",
                    id.chars().take(12).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "error while removing network: network {} has active endpoints ({eps})",
            self.name
        )
    }
}

impl ClusterError {
    /// HTTP status for the API: 409 conflicts, 403 network in use, 400 invalid input, 503 store unreachable, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            ClusterError::NetworkNameTaken(_)
            | ClusterError::VniTaken(_)
            | ClusterError::AddressInUse(_)
            | ClusterError::EndpointNameTaken(_) => 409,
            ClusterError::NetworkInUse(_) | ClusterError::SubnetTaken(_) => 403,
            ClusterError::BadUrl(_) | ClusterError::BadVni(_) | ClusterError::Ipam(_) => 400,
            ClusterError::Connect(_)
            | ClusterError::Unavailable(_)
            | ClusterError::LeaseLost(_) => 503,
            ClusterError::Etcd(_)
            | ClusterError::Decode(_)
            | ClusterError::Closed
            | ClusterError::Contention(_)
            | ClusterError::VniExhausted
            | ClusterError::PoolExhausted => 500,
        }
    }
}

/// How to reach the cluster and how this host appears in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd client URLs, e.g. `http://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// This host's underlay address (its VTEP).
    pub advertise: IpAddr,
    /// Lease TTL.
    pub ttl: Duration,
    /// Key prefix.
    pub prefix: String,
}

impl ClusterConfig {
    /// Defaults for TTL and prefix.
    pub fn new(endpoints: Vec<String>, advertise: IpAddr) -> ClusterConfig {
        ClusterConfig {
            endpoints,
            advertise,
            ttl: DEFAULT_TTL,
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }

    /// `etcd://HOST[:PORT][,HOST[:PORT]…][/PREFIX]` (port 2379 when omitted, IPv6 hosts in
    /// brackets). The prefix, if given, replaces `/vswitch`.
    pub fn parse_url(url: &str, advertise: IpAddr) -> Result<ClusterConfig, ClusterError> {
        let bad = || ClusterError::BadUrl(url.to_string());
        let rest = url.strip_prefix("etcd://").ok_or_else(bad)?;
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let mut endpoints = Vec::new();
        for hp in hosts.split(',') {
            endpoints.push(format!("http://{}", parse_host_port(hp).ok_or_else(bad)?));
        }
        let mut cfg = ClusterConfig::new(endpoints, advertise);
        if let Some(p) = prefix {
            if p.trim_matches('/').is_empty() {
                return Err(bad());
            }
            cfg.prefix = Keys::new(p).prefix().to_string();
        }
        Ok(cfg)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → `host:port` / `[v6]:port`.
fn parse_host_port(s: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{h}]"), port)
    } else {
        let (h, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let ok = !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
        if !ok {
            return None;
        }
        (h.to_string(), port)
    };
    let port: u16 = match port {
        None => DEFAULT_PORT,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    (port != 0).then(|| format!("{host}:{port}"))
}

/// A connection to the cluster store, shared by clones.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("host_id", &self.inner.host_id)
            .finish_non_exhaustive()
    }
}

struct LeaseState {
    id: i64,
    /// A new lease was granted but the held keys are not all put again yet.
    reput_pending: bool,
}

/// How the store answered lately (`GET /info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// The last request got an answer.
    pub available: bool,
    /// The member requests go to.
    pub member: String,
    /// Why the last failed request failed.
    pub last_error: Option<String>,
}

/// Whether a request may be sent again (to another member) after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, and writes that give the same result when applied twice.
    Idempotent,
    /// Only if it certainly did not reach etcd ([`failover::not_sent`]).
    IfNotSent,
}

struct Inner {
    /// One client per member (same order as `members`).
    clients: Vec<Client>,
    members: Members,
    keys: Keys,
    host_id: String,
    advertise: IpAddr,
    ttl: Duration,
    /// Requests that attach the lease hold it for reading (put + `held` update); renewal
    /// holds it for writing, so no key is put with a lease being replaced.
    lease: RwLock<LeaseState>,
    /// Leased keys this host owns → their values (to put again under a new lease).
    held: Mutex<BTreeMap<String, String>>,
    /// Keys this host gave up while etcd did not answer → the value they must still hold
    /// to be deleted (None: any); deleted on a later keep-alive round.
    stale: Mutex<BTreeMap<String, Option<String>>>,
    health: Mutex<StoreHealth>,
    closed: AtomicBool,
    /// Tells the keep-alive task to stop (also when dropped).
    stop: watch::Sender<bool>,
}

fn ttl_secs(ttl: Duration) -> i64 {
    (ttl.as_millis().div_ceil(1000) as i64).max(1)
}

/// A uniform-ish number in `0..=n` (spreads racing allocators apart after a lost race).
fn jitter(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h % (n as u64 + 1)) as usize
}

/// Map an etcd client error, with what was being done.
fn map_etcd(ctx: &str, e: etcd_client::Error) -> ClusterError {
    use etcd_client::Error as E;
    match &e {
        E::GRpcStatus(s) if s.message().contains("lease not found") => {
            ClusterError::LeaseLost(format!("{ctx}: {}", s.message()))
        }
        E::LeaseKeepAliveError(m) if m.contains("not found") => {
            ClusterError::LeaseLost(format!("{ctx}: {m}"))
        }
        // Cancelled, DeadlineExceeded, Unavailable.
        E::GRpcStatus(s) if matches!(i32::from(s.code()), 1 | 4 | 14) => {
            ClusterError::Unavailable(format!("{ctx}: {}", s.message()))
        }
        // Unknown, with a broken connection under it (a member killed mid-request).
        E::GRpcStatus(s)
            if i32::from(s.code()) == 2 && failover::broken_connection(s.message()) =>
        {
            ClusterError::Unavailable(format!("{ctx}: {}", s.message()))
        }
        E::TransportError(_) | E::IoError(_) => ClusterError::Unavailable(format!("{ctx}: {e}")),
        _ => ClusterError::Etcd(format!("{ctx}: {e}")),
    }
}

/// Whether the request that failed with `e` certainly did not reach etcd.
fn unsent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => failover::not_sent(s.code().into(), s.message()),
        _ => false,
    }
}

impl Inner {
    /// The member requests go to, and its client.
    fn pick(&self) -> (usize, Client) {
        let i = self.members.current();
        (i, self.clients[i].clone())
    }

    /// Member `i` did not answer: move to the next one (logged).
    fn member_failed(&self, i: usize, e: &ClusterError) {
        if let Some(next) = self.members.failed(i) {
            tracing::warn!(
                "cluster store: member {} failed ({e}); switching to {}",
                self.members.url(i),
                self.members.url(next)
            );
        }
    }

    fn set_health(&self, err: Option<&ClusterError>) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.available = err.is_none();
        h.member = self.members.url(self.members.current()).to_string();
        if let Some(e) = err {
            h.last_error = Some(e.to_string());
        }
    }

    /// One request, bounded by [`OP_TIMEOUT`]: sent to the current member and, when that
    /// does not answer, again to the next ones as `retry` allows.
    async fn call<T, F>(
        &self,
        ctx: &str,
        retry: Retry,
        mut op: impl FnMut(Client) -> F,
    ) -> Result<T, ClusterError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + OP_TIMEOUT;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (i, c) = self.pick();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let limit = match retry {
                Retry::Idempotent => left.min(ATTEMPT_TIMEOUT),
                Retry::IfNotSent => left,
            };
            let (err, resend) = match tokio::time::timeout(limit, op(c)).await {
                Ok(Ok(v)) => {
                    self.set_health(None);
                    return Ok(v);
                }
                Ok(Err(e)) => {
                    let resend = retry == Retry::Idempotent || unsent(&e);
                    match map_etcd(ctx, e) {
                        err @ ClusterError::Unavailable(_) => (err, resend),
                        // etcd answered.
                        err => {
                            self.set_health(None);
                            return Err(err);
                        }
                    }
                }
                Err(_) => (
                    ClusterError::Unavailable(format!("{ctx}: no answer within {limit:?}")),
                    retry == Retry::Idempotent,
                ),
            };
            self.member_failed(i, &err);
            let pause = RETRY_PAUSE * attempt;
            if !resend
                || attempt >= RETRY_ATTEMPTS
                || tokio::time::Instant::now() + pause >= deadline
            {
                self.set_health(Some(&err));
                return Err(err);
            }
            tracing::debug!("cluster store: {err}; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn txn(&self, ctx: &str, retry: Retry, txn: Txn) -> Result<TxnResponse, ClusterError> {
        self.call(ctx, retry, |mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await
    }

    /// Queue keys for deletion on a later round (etcd did not answer now).
    fn defer_delete(&self, keys: impl IntoIterator<Item = (String, Option<String>)>) {
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keys);
    }

    /// Delete the queued keys that are not held again meanwhile.
    async fn flush_stale(&self) -> Result<(), ClusterError> {
        let todo: Vec<(String, Option<String>)> = {
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let mut stale = self.stale.lock().unwrap_or_else(|p| p.into_inner());
            stale.retain(|k, _| !held.contains_key(k));
            stale.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (key, value) in todo {
            let del = [TxnOp::delete(key.as_str(), None)];
            let txn = match &value {
                Some(v) => Txn::new()
                    .when([Compare::value(key.as_str(), CompareOp::Equal, v.as_str())])
                    .and_then(del),
                None => Txn::new().and_then(del),
            };
            self.txn("delete given-up key", Retry::Idempotent, txn)
                .await?;
            let mut stale = self.stale.lock().unwrap_or_else(|p| p.into_inner());
            if stale.get(&key) == Some(&value) {
                stale.remove(&key);
            }
        }
        Ok(())
    }
}

/// The transaction's compare held, or (for `when(absent) else txn(when(ours))`) the nested
/// one did.
fn txn_ok(resp: &TxnResponse) -> bool {
    resp.succeeded()
        || resp
            .op_responses()
            .iter()
            .any(|r| matches!(r, TxnOpResponse::Txn(t) if t.succeeded()))
}

fn absent(key: &str) -> Compare {
    Compare::version(key, CompareOp::Equal, 0)
}

fn leased(lease: i64) -> Option<PutOptions> {
    Some(PutOptions::new().with_lease(lease))
}

/// Put `ops` if `key` is absent or holds `ours`.
fn claim_txn(key: &str, ours: &str, ops: Vec<TxnOp>) -> Txn {
    Txn::new()
        .when([absent(key)])
        .and_then(ops.clone())
        .or_else([TxnOp::txn(
            Txn::new()
                .when([Compare::value(key, CompareOp::Equal, ours)])
                .and_then(ops),
        )])
}

impl Cluster {
    /// Connects (bounded by [`CONNECT_TIMEOUT`]), grants the host lease (`cfg.ttl`) and
    /// spawns a tokio task that keeps it alive every ttl/3; if the lease is lost (expired),
    /// it grants a new one and puts again this host's leased keys it still holds. Must be
    /// called inside a tokio runtime. Dropping every clone without [`Cluster::close`] stops
    /// the keep-alive, so the lease expires (the crash case). With several member URLs,
    /// requests go to one member and move to the next when it fails ([`failover`]).
    pub async fn connect(cfg: ClusterConfig, host_id: String) -> Result<Cluster, ClusterError> {
        if cfg.endpoints.is_empty() {
            return Err(ClusterError::BadUrl(String::new()));
        }
        let eps = cfg.endpoints.join(",");
        // A member without a leader refuses requests and ends watches instead of stalling.
        let opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(H2_KEEPALIVE, H2_KEEPALIVE)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let mut clients = Vec::with_capacity(cfg.endpoints.len());
        for ep in &cfg.endpoints {
            // Lazy: no I/O until the first request.
            let c = Client::connect([ep.as_str()], Some(opts.clone()))
                .await
                .map_err(|e| ClusterError::Connect(format!("{ep}: {e}")))?;
            clients.push(c);
        }
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            clients,
            members: Members::new(cfg.endpoints.clone()),
            keys: Keys::new(&cfg.prefix),
            host_id,
            advertise: cfg.advertise,
            ttl: cfg.ttl,
            lease: RwLock::new(LeaseState {
                id: 0,
                reput_pending: false,
            }),
            held: Mutex::new(BTreeMap::new()),
            stale: Mutex::new(BTreeMap::new()),
            health: Mutex::new(StoreHealth {
                available: false,
                member: cfg.endpoints[0].clone(),
                last_error: None,
            }),
            closed: AtomicBool::new(false),
            stop,
        });
        let ttl = ttl_secs(cfg.ttl);
        let grant = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            inner.call("grant lease", Retry::Idempotent, move |mut c| async move {
                c.lease_grant(ttl, None).await
            }),
        )
        .await
        {
            Err(_) => {
                return Err(ClusterError::Connect(format!(
                    "{eps}: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(e)) => return Err(ClusterError::Connect(format!("{eps}: {e}"))),
            Ok(Ok(g)) => g,
        };
        inner.lease.write().await.id = grant.id();
        let every = (cfg.ttl / 3).max(Duration::from_millis(100));
        tokio::spawn(keepalive_loop(Arc::downgrade(&inner), stop_rx, every));
        tracing::info!(
            "cluster store {eps}: connected as host {} (lease {:x}, ttl {:?})",
            inner.host_id,
            grant.id(),
            cfg.ttl
        );
        Ok(Cluster { inner })
    }

    /// [`Cluster::connect`] until it succeeds: pauses from [`RECONNECT_MIN`] doubling up to
    /// [`RECONNECT_MAX`]; `failed(attempt, error, next pause)` is told of each failure.
    pub async fn connect_retrying(
        cfg: ClusterConfig,
        host_id: String,
        mut failed: impl FnMut(u32, &ClusterError, Duration),
    ) -> Cluster {
        let mut pause = RECONNECT_MIN;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            match Cluster::connect(cfg.clone(), host_id.clone()).await {
                Ok(c) => return c,
                Err(e) => {
                    failed(attempt, &e, pause);
                    tokio::time::sleep(pause).await;
                    pause = failover::next_backoff(pause, RECONNECT_MAX);
                }
            }
        }
    }

    /// How the store answered lately.
    pub fn health(&self) -> StoreHealth {
        self.inner
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn advertise(&self) -> IpAddr {
        self.inner.advertise
    }

    pub fn host_id(&self) -> &str {
        &self.inner.host_id
    }

    /// The key layout in use.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The current lease id (diagnostics, tests).
    pub async fn lease_id(&self) -> i64 {
        self.inner.lease.read().await.id
    }

    fn check_open(&self) -> Result<(), ClusterError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ClusterError::Closed);
        }
        Ok(())
    }

    async fn get_prefix(
        &self,
        ctx: &str,
        prefix: String,
    ) -> Result<etcd_client::GetResponse, ClusterError> {
        self.inner
            .call(ctx, Retry::Idempotent, |mut c| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .await
    }

    async fn get(&self, ctx: &str, key: &str) -> Result<etcd_client::GetResponse, ClusterError> {
        self.inner
            .call(ctx, Retry::Idempotent, |mut c| async move {
                c.get(key, None).await
            })
            .await
    }

    /// A transaction that is sent again to another member only if it was not sent.
    async fn txn(&self, ctx: &str, txn: Txn) -> Result<TxnResponse, ClusterError> {
        self.inner.txn(ctx, Retry::IfNotSent, txn).await
    }

    /// A transaction that attaches this host's lease (`build(lease)`); `apply` updates the
    /// held keys under the same lease read lock. A lost lease is renewed once and the
    /// transaction retried.
    async fn leased_txn(
        &self,
        ctx: &str,
        retry: Retry,
        build: impl Fn(i64) -> Txn,
        apply: impl Fn(&TxnResponse, &mut BTreeMap<String, String>),
    ) -> Result<TxnResponse, ClusterError> {
        let mut retried = false;
        loop {
            self.check_open()?;
            let lease = self.inner.lease.read().await;
            let id = lease.id;
            match self.inner.txn(ctx, retry, build(id)).await {
                Ok(resp) => {
                    apply(
                        &resp,
                        &mut self.inner.held.lock().unwrap_or_else(|p| p.into_inner()),
                    );
                    return Ok(resp);
                }
                Err(ClusterError::LeaseLost(_)) if !retried => {
                    drop(lease);
                    retried = true;
                    self.inner.renew(id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn held_remove(&self, keys: &[&str]) {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            held.remove(*k);
        }
    }

    // ---- networks ----

    /// One transaction: the name key and the id key must both be absent, else
    /// [`ClusterError::NetworkNameTaken`].
    pub async fn create_network(&self, rec: &NetworkRecord) -> Result<(), ClusterError> {
        self.create_network_with_subnets(rec, &[]).await
    }

    /// [`Cluster::create_network`] that also reserves the network's subnets in the same
    /// transaction, so two hosts creating networks at once never get one subnet
    /// ([`ClusterError::SubnetTaken`]).
    pub async fn create_network_with_subnets(
        &self,
        rec: &NetworkRecord,
        subnets: &[IpNet],
    ) -> Result<(), ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let net_key = k.network(&rec.id);
        let name_key = k.netname(&rec.name);
        let subnet_keys: Vec<String> = subnets.iter().map(|s| k.subnet(s)).collect();
        let mut when = vec![absent(&name_key), absent(&net_key)];
        when.extend(subnet_keys.iter().map(|sk| absent(sk)));
        let mut ops = vec![
            TxnOp::put(net_key, encode(rec), None),
            TxnOp::put(name_key.as_str(), rec.id.clone(), None),
        ];
        ops.extend(
            subnet_keys
                .iter()
                .map(|sk| TxnOp::put(sk.as_str(), rec.id.clone(), None)),
        );
        let txn = Txn::new().when(when).and_then(ops);
        if !self.txn("create network", txn).await?.succeeded() {
            // Say which condition failed: a subnet held by another network, else the name.
            for (sk, subnet) in subnet_keys.iter().zip(subnets) {
                let got = self.get("create network", sk).await?;
                if got
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.value() != rec.id.as_bytes())
                {
                    return Err(ClusterError::SubnetTaken(subnet.to_string()));
                }
            }
            return Err(ClusterError::NetworkNameTaken(rec.name.clone()));
        }
        Ok(())
    }

    /// Deletes the record, its name key, its VNI key(s) and every IPAM key of the network, in
    /// one transaction; [`ClusterError::NetworkInUse`] while endpoint records of it exist
    /// (on any host). Idempotent: without a record it still frees the network's VNI and
    /// addresses (e.g. after a `create_network` that failed), and succeeds.
    pub async fn remove_network(&self, id: &str) -> Result<(), ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let net_key = k.network(id);
        for _ in 0..ALLOC_ATTEMPTS {
            let got = self.get("remove network", &net_key).await?;
            let (rec, net_unchanged) = match got.kvs().first() {
                Some(kv) => (
                    Some(records::decode_network(&net_key, id, kv.value())?),
                    Compare::mod_revision(net_key.as_str(), CompareOp::Equal, kv.mod_revision()),
                ),
                None => (None, absent(&net_key)),
            };
            let vnis = self.get_prefix("remove network", k.vnis()).await?;
            let delete_if_ours = |key: &str| {
                TxnOp::txn(
                    Txn::new()
                        .when([Compare::value(key, CompareOp::Equal, id)])
                        .and_then([TxnOp::delete(key, None)]),
                )
            };
            let mut ops = vec![TxnOp::delete(net_key.as_str(), None)];
            if let Some(r) = &rec {
                ops.push(delete_if_ours(&k.netname(&r.name)));
            }
            let subnets = self.get_prefix("remove network", k.subnets()).await?;
            for kv in vnis.kvs().iter().chain(subnets.kvs()) {
                if kv.value() == id.as_bytes() {
                    ops.push(delete_if_ours(&String::from_utf8_lossy(kv.key())));
                }
            }
            let prefix = || Some(etcd_client::DeleteOptions::new().with_prefix());
            ops.push(TxnOp::delete(k.ipam_net(id), prefix()));
            ops.push(TxnOp::delete(k.epnames_net(id), prefix()));
            let txn = Txn::new()
                .when([
                    net_unchanged,
                    Compare::version(k.endpoints_net(id), CompareOp::Equal, 0).with_prefix(),
                ])
                .and_then(ops);
            if self.txn("remove network", txn).await?.succeeded() {
                let ipam = k.ipam_net(id);
                let names = k.epnames_net(id);
                self.inner
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|key, _| !key.starts_with(&ipam) && !key.starts_with(&names));
                return Ok(());
            }
            let eps = self.endpoints(Some(id)).await?;
            if !eps.is_empty() {
                return Err(ClusterError::NetworkInUse(NetworkInUse {
                    name: rec.map_or_else(|| id.to_string(), |r| r.name),
                    endpoints: eps.into_iter().map(|e| (e.name, e.endpoint_id)).collect(),
                }));
            }
            // The record changed under us, or the endpoints went away: look again.
        }
        Err(ClusterError::Contention("remove network".into()))
    }

    /// Every network record (undecodable ones are skipped with a warning).
    pub async fn networks(&self) -> Result<Vec<NetworkRecord>, ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let resp = self.get_prefix("list networks", k.networks()).await?;
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(Key::Network { id }) = k.parse(&key) else {
                continue;
            };
            match records::decode_network(&key, &id, kv.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(out)
    }

    /// A VNI for the network: `requested` (any in 1..=2^24-1; taken by another network →
    /// [`ClusterError::VniTaken`]), else the one it already has, else the lowest free from
    /// [`VNI_FIRST`]. Claimed with a create-if-absent transaction, retried on a lost race.
    pub async fn allocate_vni(
        &self,
        network_id: &str,
        requested: Option<u32>,
    ) -> Result<u32, ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        if let Some(v) = requested {
            check_vni(v)?;
            let key = k.vni(v);
            let txn = claim_txn(
                &key,
                network_id,
                vec![TxnOp::put(key.as_str(), network_id, None)],
            );
            if txn_ok(&self.txn("allocate VNI", txn).await?) {
                return Ok(v);
            }
            return Err(ClusterError::VniTaken(v));
        }
        for attempt in 0..ALLOC_ATTEMPTS {
            let resp = self.get_prefix("allocate VNI", k.vnis()).await?;
            let mut taken = BTreeSet::new();
            for kv in resp.kvs() {
                if let Some(Key::Vni(v)) = k.parse(&String::from_utf8_lossy(kv.key())) {
                    if kv.value() == network_id.as_bytes() {
                        return Ok(v);
                    }
                    taken.insert(v);
                }
            }
            let v = choose_vni(&taken, jitter(attempt.min(16)))
                .or_else(|| choose_vni(&taken, 0))
                .ok_or(ClusterError::VniExhausted)?;
            let key = k.vni(v);
            let txn = Txn::new().when([absent(&key)]).and_then([TxnOp::put(
                key.as_str(),
                network_id,
                None,
            )]);
            if self.txn("allocate VNI", txn).await?.succeeded() {
                return Ok(v);
            }
        }
        Err(ClusterError::Contention("allocate VNI".into()))
    }

    /// Frees a VNI if it belongs to the network (e.g. after a failed create).
    pub async fn release_vni(&self, network_id: &str, vni: u32) -> Result<(), ClusterError> {
        self.check_open()?;
        let key = self.inner.keys.vni(vni);
        let txn = Txn::new()
            .when([Compare::value(key.as_str(), CompareOp::Equal, network_id)])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.txn("release VNI", txn).await?;
        Ok(())
    }

    // ---- IPAM ----

    /// One address of `subnet` for `owner`, held by this host's lease: `requested` if free
    /// (taken → [`ClusterError::AddressInUse`], unless this host already holds it for the
    /// same owner), else the lowest free host address (not the network/broadcast address,
    /// not `reserved`, within `range` if given; none left → [`ClusterError::PoolExhausted`]).
    /// Claimed with a create-if-absent transaction, retried on a lost race.
    pub async fn allocate_ip(
        &self,
        network_id: &str,
        subnet: IpNet,
        range: Option<IpNet>,
        reserved: &[IpAddr],
        requested: Option<IpAddr>,
        owner: &str,
    ) -> Result<IpAddr, ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let mine = IpamRecord {
            owner: owner.to_string(),
            host: self.inner.host_id.clone(),
        };
        let value = encode(&mine);
        for attempt in 0..ALLOC_ATTEMPTS {
            let resp = self
                .get_prefix("allocate address", k.ipam_net(network_id))
                .await?;
            let mut taken = Vec::with_capacity(resp.kvs().len());
            let mut requested_rev = None;
            for kv in resp.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                if let Some(Key::Ipam { ip, .. }) = k.parse(&key) {
                    if Some(ip) == requested {
                        let rec = records::decode_ipam(&key, kv.value()).ok();
                        requested_rev = Some((kv.mod_revision(), rec));
                    }
                    taken.push(ip);
                }
            }
            if let (Some(ip), Some((rev, rec))) = (requested, requested_rev) {
                // Already ours (e.g. a restart within the lease TTL): take it over.
                if rec.as_ref() != Some(&mine) {
                    return Err(ClusterError::AddressInUse(ip));
                }
                let key = k.ipam(network_id, ip);
                let resp = self
                    .leased_txn(
                        "allocate address",
                        Retry::IfNotSent,
                        |lease| {
                            Txn::new()
                                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
                                .and_then([TxnOp::put(key.as_str(), value.as_str(), leased(lease))])
                        },
                        |resp, held| {
                            if resp.succeeded() {
                                held.insert(key.clone(), value.clone());
                            }
                        },
                    )
                    .await?;
                if resp.succeeded() {
                    return Ok(ip);
                }
                continue;
            }
            let ip = choose_ip(
                subnet,
                range,
                reserved,
                &taken,
                requested,
                jitter(attempt.min(16)),
            )?;
            let key = k.ipam(network_id, ip);
            let resp = self
                .leased_txn(
                    "allocate address",
                    Retry::IfNotSent,
                    |lease| {
                        Txn::new().when([absent(&key)]).and_then([TxnOp::put(
                            key.as_str(),
                            value.as_str(),
                            leased(lease),
                        )])
                    },
                    |resp, held| {
                        if resp.succeeded() {
                            held.insert(key.clone(), value.clone());
                        }
                    },
                )
                .await?;
            if resp.succeeded() {
                return Ok(ip);
            }
        }
        Err(ClusterError::Contention("allocate address".into()))
    }

    /// Frees an address (no error if it was not allocated).
    pub async fn release_ip(&self, network_id: &str, ip: IpAddr) -> Result<(), ClusterError> {
        self.check_open()?;
        let key = self.inner.keys.ipam(network_id, ip);
        self.held_remove(&[&key]);
        let r = self
            .inner
            .call("release address", Retry::Idempotent, |mut c| {
                let k = key.clone();
                async move { c.delete(k, None).await }
            })
            .await;
        if let Err(ClusterError::Unavailable(_)) = &r {
            // Not put again under a new lease; deleted when etcd answers.
            self.inner.defer_delete([(key.clone(), None)]);
        }
        r.map(|_| ())
    }

    // ---- endpoints ----

    /// One transaction: the endpoint name (per network) must be free or already this
    /// endpoint's, else [`ClusterError::EndpointNameTaken`] ("service endpoint with name …
    /// already exists"); puts the record and the name key with this host's lease.
    pub async fn publish_endpoint(&self, rec: &EndpointRecord) -> Result<(), ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let rec_key = k.endpoint(&rec.network_id, &rec.endpoint_id);
        let value = encode(rec);
        let name_key = (!rec.name.is_empty()).then(|| k.epname(&rec.network_id, &rec.name));
        // The name this host published the endpoint under before, if any.
        let old_name = self
            .inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rec_key)
            .and_then(|v| serde_json::from_str::<EndpointRecord>(v).ok())
            .map(|r| r.name);
        let resp = self
            .leased_txn(
                "publish endpoint",
                // Put if absent or already this endpoint's: the same when applied twice.
                Retry::Idempotent,
                |lease| {
                    let mut ops = vec![TxnOp::put(rec_key.as_str(), value.as_str(), leased(lease))];
                    match &name_key {
                        Some(nk) => {
                            ops.push(TxnOp::put(
                                nk.as_str(),
                                rec.endpoint_id.as_str(),
                                leased(lease),
                            ));
                            claim_txn(nk, &rec.endpoint_id, ops)
                        }
                        None => Txn::new().and_then(ops),
                    }
                },
                |resp, held| {
                    if txn_ok(resp) {
                        held.insert(rec_key.clone(), value.clone());
                        if let Some(nk) = &name_key {
                            held.insert(nk.clone(), rec.endpoint_id.clone());
                        }
                    }
                },
            )
            .await?;
        if !txn_ok(&resp) {
            return Err(ClusterError::EndpointNameTaken(rec.name.clone()));
        }
        // Renamed: free the old name if it is still this endpoint's.
        if let Some(old) = old_name.filter(|n| !n.is_empty() && *n != rec.name) {
            let ok = k.epname(&rec.network_id, &old);
            let txn = Txn::new()
                .when([Compare::value(
                    ok.as_str(),
                    CompareOp::Equal,
                    rec.endpoint_id.as_str(),
                )])
                .and_then([TxnOp::delete(ok.as_str(), None)]);
            self.txn("publish endpoint", txn).await?;
            self.held_remove(&[&ok]);
        }
        Ok(())
    }

    /// Deletes the record and its name key (only if the name is this endpoint's). No error
    /// if there is no record.
    pub async fn withdraw_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let rec_key = k.endpoint(network_id, endpoint_id);
        // Given up at once: never put again under a new lease, whatever etcd answers now.
        let held_name = {
            let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
            let name = held
                .remove(&rec_key)
                .and_then(|v| serde_json::from_str::<EndpointRecord>(&v).ok())
                .map(|r| r.name)
                .filter(|n| !n.is_empty());
            if let Some(n) = &name {
                held.remove(&k.epname(network_id, n));
            }
            name
        };
        let defer = |e: ClusterError| {
            if let ClusterError::Unavailable(_) = e {
                let mut keys = vec![(rec_key.clone(), None)];
                if let Some(n) = &held_name {
                    keys.push((k.epname(network_id, n), Some(endpoint_id.to_string())));
                }
                self.inner.defer_delete(keys);
            }
            e
        };
        let got = self
            .get("withdraw endpoint", &rec_key)
            .await
            .map_err(&defer)?;
        let name = got.kvs().first().and_then(|kv| {
            records::decode_endpoint(&rec_key, network_id, endpoint_id, kv.value())
                .ok()
                .map(|r| r.name)
        });
        let mut txn = Txn::new();
        let mut name_key = None;
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let nk = k.epname(network_id, &name);
            txn = txn
                .when([Compare::value(nk.as_str(), CompareOp::Equal, endpoint_id)])
                .and_then([
                    TxnOp::delete(rec_key.as_str(), None),
                    TxnOp::delete(nk.as_str(), None),
                ])
                .or_else([TxnOp::delete(rec_key.as_str(), None)]);
            name_key = Some(nk);
        } else {
            txn = txn.and_then([TxnOp::delete(rec_key.as_str(), None)]);
        }
        self.inner
            .txn("withdraw endpoint", Retry::Idempotent, txn)
            .await
            .map_err(&defer)?;
        match &name_key {
            Some(nk) => self.held_remove(&[&rec_key, nk]),
            None => self.held_remove(&[&rec_key]),
        }
        Ok(())
    }

    /// Endpoint records of one network, or of all (undecodable ones skipped with a warning).
    pub async fn endpoints(
        &self,
        network_id: Option<&str>,
    ) -> Result<Vec<EndpointRecord>, ClusterError> {
        self.check_open()?;
        let k = &self.inner.keys;
        let prefix = match network_id {
            Some(n) => k.endpoints_net(n),
            None => k.endpoints(),
        };
        let resp = self.get_prefix("list endpoints", prefix).await?;
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(Key::Endpoint {
                network_id,
                endpoint_id,
            }) = k.parse(&key)
            else {
                continue;
            };
            match records::decode_endpoint(&key, &network_id, &endpoint_id, kv.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(out)
    }

    // ---- watch ----

    /// Snapshot then live changes: first `NetworkPut`/`EndpointPut` for everything present
    /// (networks first), then `Synced`, then changes from the snapshot's revision + 1. If the
    /// watch breaks (etcd restart, compaction), it is re-made with backoff and a fresh
    /// snapshot is sent, preceded by `Resync` (drop the view). Runs as a tokio task until
    /// the receiver is dropped (it does not keep the lease alive). Must be called inside a
    /// tokio runtime.
    pub fn watch(&self) -> mpsc::Receiver<ClusterEvent> {
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL);
        tokio::spawn(watch_loop(Arc::downgrade(&self.inner), tx));
        rx
    }

    /// Graceful shutdown: stops the keep-alive and revokes the lease, so this host's
    /// addresses and endpoint records vanish at once. Later calls fail with
    /// [`ClusterError::Closed`].
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.inner.stop.send(true);
        // Wait for requests holding the lease to finish.
        let lease = self.inner.lease.write().await;
        let id = lease.id;
        let revoke = self
            .inner
            .call("revoke lease", Retry::Idempotent, move |mut c| async move {
                c.lease_revoke(id).await
            });
        let r = tokio::time::timeout(CLOSE_TIMEOUT, revoke)
            .await
            .unwrap_or_else(|_| {
                Err(ClusterError::Unavailable(format!(
                    "revoke lease: no answer within {CLOSE_TIMEOUT:?}"
                )))
            });
        if let Err(e) = r {
            tracing::warn!("cluster store: {e} (the lease will expire by itself)");
        }
        self.inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Inner {
    /// Replace a lost lease (if `lost` is still the current one) and put the held keys again.
    async fn renew(&self, lost: i64) -> Result<(), ClusterError> {
        let mut lease = self.lease.write().await;
        if lease.id != lost || self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let ttl = ttl_secs(self.ttl);
        let grant = self
            .call("grant lease", Retry::Idempotent, move |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        tracing::warn!(
            "cluster store: lease {lost:x} lost; continuing with lease {:x}",
            grant.id()
        );
        lease.id = grant.id();
        lease.reput_pending = true;
        self.reput(&mut lease).await
    }

    /// Put every held key again with the current lease, unless another host claimed it.
    async fn reput(&self, lease: &mut LeaseState) -> Result<(), ClusterError> {
        let held: Vec<(String, String)> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in held {
            let ops = vec![TxnOp::put(key.as_str(), value.as_str(), leased(lease.id))];
            // Put if absent or already ours: the same when applied twice.
            let resp = self
                .txn(
                    "put held key again",
                    Retry::Idempotent,
                    claim_txn(&key, &value, ops),
                )
                .await?;
            if !txn_ok(&resp) {
                tracing::warn!(
                    "cluster store: {key} was claimed elsewhere while this host's lease was lost; dropping it"
                );
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            }
        }
        lease.reput_pending = false;
        Ok(())
    }

    /// One keep-alive round.
    async fn keepalive_tick(
        &self,
        keeper: &mut Option<Keeper>,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        let (id, pending) = {
            let l = self.lease.read().await;
            (l.id, l.reput_pending)
        };
        if pending {
            let mut lease = self.lease.write().await;
            if lease.id == id && lease.reput_pending {
                self.reput(&mut lease).await?;
            }
        }
        // Bounded by the round, so a stuck stream is re-made before the TTL runs out.
        let (member, alive) = match keeper {
            Some((i, k, s)) if k.id() == id => {
                let r = tokio::time::timeout(limit, async {
                    k.keep_alive().await?;
                    Ok(s.message().await?.map(|m| m.ttl()))
                })
                .await;
                (*i, r)
            }
            _ => {
                let (i, mut c) = self.pick();
                // It reads the first answer itself (a lost lease fails here).
                let r = tokio::time::timeout(limit, async {
                    let (k, s) = c.lease_keep_alive(id).await?;
                    *keeper = Some((i, k, s));
                    Ok(Some(1))
                })
                .await;
                (i, r)
            }
        };
        let alive = match alive {
            Err(_) => Err(ClusterError::Unavailable(format!(
                "lease keep-alive: no answer within {limit:?}"
            ))),
            Ok(r) => r
                .map(|ttl: Option<i64>| ttl.map(|t| t > 0))
                .map_err(|e: etcd_client::Error| map_etcd("lease keep-alive", e)),
        };
        let res = match alive {
            Ok(Some(true)) => {
                self.set_health(None);
                return self.flush_stale().await;
            }
            Ok(Some(false)) | Err(ClusterError::LeaseLost(_)) => {
                *keeper = None;
                return self.renew(id).await;
            }
            Ok(None) => ClusterError::Unavailable("lease keep-alive stream ended".into()),
            Err(e) => e,
        };
        *keeper = None;
        // Whatever broke the stream, try the next member.
        self.member_failed(member, &res);
        self.set_health(Some(&res));
        Err(res)
    }
}

/// A lease keep-alive stream and the member it goes to.
type Keeper = (usize, LeaseKeeper, LeaseKeepAliveStream);

/// Keeps the lease alive until told to stop or until every [`Cluster`] clone is gone: a
/// round every `every`, and after a failed round, rounds again from [`BACKOFF_MIN`]
/// doubling up to `every` (so a member's loss is routed around well within the TTL).
async fn keepalive_loop(inner: Weak<Inner>, mut stop: watch::Receiver<bool>, every: Duration) {
    let mut keeper = None;
    let mut pause = every;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            // Stop requested, or the sender (inside Inner) dropped.
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        match inner.keepalive_tick(&mut keeper, every).await {
            Ok(()) => {
                if failing {
                    tracing::info!("cluster store: keep-alive: the store answers again");
                }
                failing = false;
                pause = every;
            }
            Err(e) => {
                pause = if failing {
                    failover::next_backoff(pause, every)
                } else {
                    BACKOFF_MIN
                };
                failing = true;
                tracing::warn!("cluster store: keep-alive: {e}; next attempt in {pause:?}");
            }
        }
    }
}

enum WatchEnd {
    ReceiverGone,
    Broken(ClusterError),
}

/// Where the watch stands between (re-)made watches.
#[derive(Default)]
struct WatchPos {
    /// A snapshot was sent (a later one is preceded by `Resync`).
    sent_snapshot: bool,
    /// The next revision to watch from; None: take a snapshot first.
    resume: Option<i64>,
}

async fn watch_loop(inner: Weak<Inner>, tx: mpsc::Sender<ClusterEvent>) {
    let mut pos = WatchPos::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut streaming = false;
        match watch_once(&inner, &tx, &mut pos, &mut streaming).await {
            WatchEnd::ReceiverGone => return,
            WatchEnd::Broken(e) => {
                if streaming {
                    backoff = BACKOFF_MIN;
                }
                match pos.resume {
                    Some(r) => tracing::warn!(
                        "cluster store: watch: {e}; watching again from revision {r} in {backoff:?}"
                    ),
                    None => tracing::warn!(
                        "cluster store: watch: {e}; taking a new snapshot in {backoff:?}"
                    ),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = failover::next_backoff(backoff, BACKOFF_MAX);
    }
}

/// A snapshot (when there is no revision to resume from) and one watch, until the watch
/// breaks or the receiver goes. Events are never lost across re-made watches: the next
/// one starts after the last revision delivered; only when etcd compacted that revision
/// away does a fresh snapshot (after `Resync`) replace the view.
async fn watch_once(
    inner: &Weak<Inner>,
    tx: &mpsc::Sender<ClusterEvent>,
    pos: &mut WatchPos,
    streaming: &mut bool,
) -> WatchEnd {
    macro_rules! send {
        ($ev:expr) => {
            if tx.send($ev).await.is_err() {
                return WatchEnd::ReceiverGone;
            }
        };
    }
    let Some(strong) = inner.upgrade() else {
        return WatchEnd::ReceiverGone;
    };
    let keys = strong.keys.clone();
    let start = match pos.resume {
        Some(r) => r,
        None => match snapshot(&strong, &keys).await {
            Ok((rev, events)) => {
                if pos.sent_snapshot {
                    send!(ClusterEvent::Resync);
                }
                for ev in events {
                    send!(ev);
                }
                send!(ClusterEvent::Synced);
                pos.sent_snapshot = true;
                pos.resume = Some(rev + 1);
                rev + 1
            }
            Err(e) => return WatchEnd::Broken(e),
        },
    };
    let (member, mut c) = strong.pick();
    // Only the client is held while streaming, so dropping every Cluster still ends it.
    let fail = |e: ClusterError| {
        if let Some(i) = inner.upgrade() {
            if let ClusterError::Unavailable(_) = e {
                i.member_failed(member, &e);
            }
        }
        WatchEnd::Broken(e)
    };
    drop(strong);
    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let stream = tokio::time::timeout(OP_TIMEOUT, c.watch(keys.root(), Some(opts))).await;
    let mut stream = match stream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(map_etcd("watch", e)),
        Err(_) => {
            return fail(ClusterError::Unavailable(format!(
                "watch: no answer within {OP_TIMEOUT:?}"
            )))
        }
    };
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = tx.closed() => return WatchEnd::ReceiverGone,
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => return fail(ClusterError::Unavailable("watch stream ended".into())),
            Err(e) => return fail(map_etcd("watch", e)),
        };
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                // The revision to resume from is gone: start over from a snapshot.
                pos.resume = None;
            }
            return fail(ClusterError::Etcd(format!(
                "watch canceled (compact revision {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            )));
        }
        *streaming = true;
        let mut last = None;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            last = last.max(Some(kv.mod_revision()));
            let kind = match ev.event_type() {
                EventType::Put => ChangeKind::Put,
                EventType::Delete => ChangeKind::Delete,
            };
            match decode_change(&keys, kind, kv.key(), kv.value()) {
                Ok(Some(e)) => send!(e),
                Ok(None) => {}
                Err(e) => tracing::warn!("cluster store: {e}"),
            }
        }
        // A whole response is delivered before the next is read: resume after it.
        if let Some(r) = last {
            pos.resume = Some(r + 1);
        }
    }
}

/// Networks, then endpoints at the same revision, as events; and that revision.
async fn snapshot(inner: &Inner, keys: &Keys) -> Result<(i64, Vec<ClusterEvent>), ClusterError> {
    let prefix = keys.networks();
    let nets = inner
        .call("watch snapshot", Retry::Idempotent, |mut c| {
            let p = prefix.clone();
            async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
        })
        .await?;
    let rev = nets.header().map(|h| h.revision()).unwrap_or(0);
    let prefix = keys.endpoints();
    let eps = inner
        .call("watch snapshot", Retry::Idempotent, |mut c| {
            let p = prefix.clone();
            async move {
                c.get(p, Some(GetOptions::new().with_prefix().with_revision(rev)))
                    .await
            }
        })
        .await?;
    let (events, errors) = snapshot_events(
        keys,
        nets.kvs()
            .iter()
            .chain(eps.kvs())
            .map(|kv| (kv.key(), kv.value())),
    );
    for e in errors {
        tracing::warn!("cluster store: {e}");
    }
    Ok((rev, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv() -> IpAddr {
        "192.168.1.10".parse().unwrap()
    }

    #[test]
    fn parse_url_forms() {
        let c = ClusterConfig::parse_url("etcd://10.0.0.1:2379", adv()).unwrap();
        assert_eq!(c.endpoints, vec!["http://10.0.0.1:2379"]);
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.ttl, DEFAULT_TTL);
        assert_eq!(c.advertise, adv());
        let c = ClusterConfig::parse_url("etcd://a:1,b,[fd00::1]:3,[::1]/my/pfx/", adv()).unwrap();
        assert_eq!(
            c.endpoints,
            vec![
                "http://a:1",
                "http://b:2379",
                "http://[fd00::1]:3",
                "http://[::1]:2379"
            ]
        );
        assert_eq!(c.prefix, "/my/pfx");
    }

    #[test]
    fn parse_url_rejects() {
        for bad in [
            "",
            "etcd://",
            "http://a:2379",
            "etcd://a:",
            "etcd://a:x",
            "etcd://a:0",
            "etcd://a:70000",
            "etcd://a,,b",
            "etcd://[zz]:1",
            "etcd://[::1]x",
            "etcd://a b:1",
            "etcd://a:1/",
        ] {
            assert!(
                matches!(
                    ClusterConfig::parse_url(bad, adv()),
                    Err(ClusterError::BadUrl(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_texts_and_statuses() {
        let e = ClusterError::EndpointNameTaken("web2".into());
        assert_eq!(
            e.to_string(),
            "service endpoint with name web2 already exists"
        );
        assert_eq!(e.status(), 409);
        let e = ClusterError::NetworkNameTaken("ov".into());
        assert_eq!(e.to_string(), "network with name ov already exists");
        assert_eq!(e.status(), 409);
        let e = ClusterError::NetworkInUse(NetworkInUse {
            name: "mynet".into(),
            endpoints: vec![
                ("web1".into(), "5063978cc7d6aaaaaaaa".into()),
                ("web2".into(), "abc".into()),
            ],
        });
        assert_eq!(
            e.to_string(),
            "error while removing network: network mynet has active endpoints \
             (name:\"web1\" id:\"5063978cc7d6\", name:\"web2\" id:\"abc\")"
        );
        assert_eq!(e.status(), 403);
        assert_eq!(ClusterError::VniTaken(300).status(), 409);
        assert_eq!(
            ClusterError::AddressInUse("10.0.0.2".parse().unwrap()).status(),
            409
        );
        assert_eq!(ClusterError::Unavailable("x".into()).status(), 503);
        assert_eq!(ClusterError::Connect("x".into()).status(), 503);
        assert_eq!(ClusterError::PoolExhausted.status(), 500);
        assert_eq!(ClusterError::Decode("x".into()).status(), 500);
    }

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(ttl_secs(Duration::from_secs(10)), 10);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
    }

    #[test]
    fn jitter_in_bounds() {
        assert_eq!(jitter(0), 0);
        for _ in 0..100 {
            assert!(jitter(5) <= 5);
        }
    }
}
