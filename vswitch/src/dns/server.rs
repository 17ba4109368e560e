//! The resolver's I/O: UDP and TCP sockets on 127.0.0.11:53 inside one sandbox's network
//! namespace, answered from the daemon's [`NameView`], the rest forwarded upstream.
//!
//! The resolver never answers anything from outside its sandbox: its sockets are bound to a
//! loopback address *inside the sandbox namespace*, which only processes of that namespace
//! can reach (the kernel drops 127/8 packets arriving on any other interface as martians).
//! As a second fence, a datagram or connection whose source is not loopback is ignored.
//!
//! Forwarding happens from the daemon's own namespace (sockets created normally on a tokio
//! worker), so the host's resolvers are reachable even when they are on the host's loopback
//! (systemd-resolved's 127.0.0.53) and whatever the sandbox's routes are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, Instant};

use super::wire::{self, Packet, Rcode};
use super::{answer_over, error_reply, Answer, NameView, Transport};

/// The resolver's address inside every sandbox, as Docker's.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The resolver's port (UDP and TCP).
pub const DNS_PORT: u16 = 53;
/// Port of the upstreams read from resolv.conf.
pub const UPSTREAM_PORT: u16 = 53;
/// How long one forwarded query may take, all upstreams and retries together; the client
/// then gets SERVFAIL. glibc waits 5 s per try, so it still sees our answer.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(4);
/// How long one upstream gets before the next is tried (or, with a single upstream, the
/// query is sent again: UDP loses packets).
pub const UPSTREAM_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Passes over the upstream list per forwarded query (bounded, so upstreams that fail at
/// once, e.g. connection refused, do not make us spin until the timeout).
pub const FORWARD_ROUNDS: usize = 2;
/// Forwards in flight per sandbox (UDP and TCP together): beyond it, SERVFAIL at once, so
/// one sandbox cannot pile up sockets and tasks in the daemon.
pub const MAX_IN_FLIGHT: usize = 64;
/// TCP clients served at once per sandbox; more are closed at accept.
pub const MAX_TCP_CONNECTIONS: usize = 16;
/// A TCP client that sends no complete query for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors starting a resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The namespace file cannot be opened.
    #[error("dns: open netns {path}: {source}")]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Entering the namespace failed.
    #[error("dns: setns {path}: {source}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A socket cannot be bound (is `lo` up in the namespace? is another resolver there?).
    #[error("dns: bind {proto} {DNS_ADDR}:{DNS_PORT} in {path}: {source}")]
    Bind {
        /// The namespace file.
        path: PathBuf,
        /// "udp" or "tcp".
        proto: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The helper thread could not be started or panicked.
    #[error("dns: namespace thread for {0}: failed")]
    Thread(PathBuf),
    /// The sockets cannot be registered with the tokio runtime.
    #[error("dns: register sockets with the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the serving tasks of one resolver share.
struct Shared {
    asker: String,
    view: Arc<dyn NameView>,
    upstreams: Vec<SocketAddr>,
    /// Permits for forwards in flight ([`MAX_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
    /// Round-robin counter handed to [`answer_over`].
    rotate: AtomicUsize,
    counters: Arc<Counters>,
}

/// What a resolver has done since it started (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Messages received (UDP datagrams and TCP messages).
    pub queries: u64,
    /// Answered from the sandbox's networks (names known, or NXDOMAIN/errors made here).
    pub answers: u64,
    /// Sent on to the upstream resolvers.
    pub forwards: u64,
    /// Ignored (too short, or themselves responses).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queries: AtomicU64,
    answers: AtomicU64,
    forwards: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn decide(&self, query: &[u8], transport: Transport) -> Answer {
        let rotate = self.rotate.fetch_add(1, Ordering::Relaxed);
        let a = answer_over(query, &self.asker, self.view.as_ref(), rotate, transport);
        let c = &self.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        match a {
            Answer::Local(_) => &c.answers,
            Answer::Forward if self.upstreams.is_empty() => &c.answers,
            Answer::Forward => &c.forwards,
            Answer::Drop => &c.dropped,
        }
        .fetch_add(1, Ordering::Relaxed);
        a
    }
}

/// A running resolver for one sandbox. Dropping it (or [`Resolver::stop`]) stops the server
/// and closes its sockets; [`Resolver::shutdown`] also waits until they are closed.
#[derive(Debug)]
pub struct Resolver {
    asker: String,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Resolver {
    /// Opens UDP and TCP sockets on 127.0.0.11:53 inside the namespace at `netns_path` and
    /// serves them on `rt`. Queries for names `view` knows for `asker` are answered locally;
    /// others are forwarded to `upstreams` (over UDP, or TCP for TCP queries) from the daemon's
    /// namespace, within [`FORWARD_TIMEOUT`] and at most [`MAX_IN_FLIGHT`] at once (excess →
    /// SERVFAIL). Without upstreams, non-local names get NXDOMAIN: the sandbox's networks are
    /// all there is.
    ///
    /// The namespace's `lo` must be up (it holds 127.0.0.0/8). Call it from anywhere but
    /// not where blocking briefly is forbidden: it waits for a short-lived helper thread.
    pub fn start(
        rt: &tokio::runtime::Handle,
        netns_path: &Path,
        asker: String,
        view: Arc<dyn NameView>,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Resolver, DnsError> {
        let (udp, tcp) = open_in_netns(netns_path)?;
        // `from_std` registers with the reactor of the runtime it is called in.
        let _guard = rt.enter();
        let udp = UdpSocket::from_std(udp).map_err(DnsError::Runtime)?;
        let tcp = TcpListener::from_std(tcp).map_err(DnsError::Runtime)?;
        let shared = Arc::new(Shared {
            asker: asker.clone(),
            view,
            upstreams,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            rotate: AtomicUsize::new(0),
            counters: Arc::new(Counters::default()),
        });
        let counters = shared.counters.clone();
        tracing::debug!(
            "dns: resolver for {asker} in {} (upstreams {:?})",
            netns_path.display(),
            shared.upstreams
        );
        let tasks = vec![
            rt.spawn(serve_udp(udp, shared.clone())),
            rt.spawn(serve_tcp(tcp, shared)),
        ];
        Ok(Resolver {
            asker,
            tasks,
            counters,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> DnsStats {
        let c = &self.counters;
        DnsStats {
            queries: c.queries.load(Ordering::Relaxed),
            answers: c.answers.load(Ordering::Relaxed),
            forwards: c.forwards.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The sandbox this resolver serves.
    pub fn asker(&self) -> &str {
        &self.asker
    }

    /// Stops serving. The sockets close as soon as the runtime drops the tasks (at once
    /// unless every worker is busy); use [`Resolver::shutdown`] to wait for it.
    pub fn stop(self) {}

    /// Stops serving and returns once the listening sockets are closed, so a new resolver
    /// can bind the same namespace's 127.0.0.11:53 right away.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            // A cancelled task's future (and the sockets it owns) is dropped before its
            // handle completes.
            let _ = t.await;
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Each serving task owns its socket and a JoinSet of its children: dropping the task
        // drops both, closing the socket and aborting the children.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Creates the sockets inside the namespace, on a fresh thread that alone enters it (a
/// namespace belongs to a thread; tokio workers must stay in the daemon's). A socket stays
/// in the namespace it was created in after the thread ends.
fn open_in_netns(path: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let ns = std::fs::File::open(path).map_err(|source| DnsError::OpenNetns {
        path: path.to_path_buf(),
        source,
    })?;
    let p = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("vsw-dns-netns".into())
        .spawn(move || -> Result<_, DnsError> {
            // SAFETY: setns on a valid namespace fd, affecting only this short-lived thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(DnsError::Setns {
                    path: p,
                    source: std::io::Error::last_os_error(),
                });
            }
            let addr = SocketAddr::from((DNS_ADDR, DNS_PORT));
            let bind_err = |proto, path: &Path| {
                let path = path.to_path_buf();
                move |source| DnsError::Bind {
                    path,
                    proto,
                    source,
                }
            };
            let udp = std::net::UdpSocket::bind(addr).map_err(bind_err("udp", &p))?;
            udp.set_nonblocking(true).map_err(bind_err("udp", &p))?;
            let tcp = std::net::TcpListener::bind(addr).map_err(bind_err("tcp", &p))?;
            tcp.set_nonblocking(true).map_err(bind_err("tcp", &p))?;
            Ok((udp, tcp))
        })
        .map_err(|_| DnsError::Thread(path.to_path_buf()))?;
    thread
        .join()
        .map_err(|_| DnsError::Thread(path.to_path_buf()))?
}

// ---------------------------------------------------------------------------------------------
// UDP

/// Serves the UDP socket. Forwards run as child tasks that hand their reply back through a
/// channel, so that this task alone owns the socket and closes it when aborted.
async fn serve_udp(sock: UdpSocket, shared: Arc<Shared>) {
    let (tx, mut rx) = mpsc::channel::<(Vec<u8>, SocketAddr)>(MAX_IN_FLIGHT);
    let mut forwards = JoinSet::new();
    // A UDP datagram cannot exceed the TCP message limit; nothing is ever cut short.
    let mut buf = vec![0u8; wire::MAX_TCP_LEN];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, src) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("dns: udp recv: {e}");
                        continue;
                    }
                };
                if !src.ip().is_loopback() {
                    continue;
                }
                let query = buf.get(..n).unwrap_or(&[]);
                let reply = match shared.decide(query, Transport::Udp) {
                    Answer::Local(r) => Some(r),
                    Answer::Drop => None,
                    Answer::Forward if shared.upstreams.is_empty() => {
                        error_reply(query, Rcode::NXDOMAIN)
                    }
                    Answer::Forward => match shared.in_flight.clone().try_acquire_owned() {
                        Err(_) => error_reply(query, Rcode::SERVFAIL),
                        Ok(permit) => {
                            let query = query.to_vec();
                            let shared = shared.clone();
                            let tx = tx.clone();
                            forwards.spawn(async move {
                                let _permit = permit;
                                let reply = forward(&query, &shared.upstreams, Transport::Udp)
                                    .await
                                    .or_else(|| error_reply(&query, Rcode::SERVFAIL));
                                if let Some(r) = reply {
                                    let _ = tx.send((r, src)).await;
                                }
                            });
                            None
                        }
                    },
                };
                if let Some(r) = reply {
                    send_udp(&sock, &r, src).await;
                }
            }
            Some((reply, dst)) = rx.recv() => send_udp(&sock, &reply, dst).await,
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
}

async fn send_udp(sock: &UdpSocket, reply: &[u8], dst: SocketAddr) {
    if let Err(e) = sock.send_to(reply, dst).await {
        tracing::debug!("dns: udp send to {dst}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// TCP

/// Accepts TCP clients, at most [`MAX_TCP_CONNECTIONS`] at once.
async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if !peer.ip().is_loopback() {
                        continue;
                    }
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue; // dropping the stream closes it
                    };
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let _slot = slot;
                        serve_tcp_conn(stream, &shared).await;
                    });
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning on a listener that stays ready.
                    tracing::debug!("dns: tcp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one TCP client: length-prefixed queries, answered in order.
async fn serve_tcp_conn(mut stream: TcpStream, shared: &Shared) {
    loop {
        let query = match timeout(TCP_IDLE_TIMEOUT, read_tcp_msg(&mut stream)).await {
            Ok(Ok(q)) => q,
            _ => return,
        };
        let reply = match shared.decide(&query, Transport::Tcp) {
            Answer::Local(r) => Some(r),
            Answer::Drop => return,
            Answer::Forward if shared.upstreams.is_empty() => error_reply(&query, Rcode::NXDOMAIN),
            Answer::Forward => match shared.in_flight.clone().try_acquire_owned() {
                Err(_) => error_reply(&query, Rcode::SERVFAIL),
                Ok(_permit) => forward(&query, &shared.upstreams, Transport::Tcp)
                    .await
                    .or_else(|| error_reply(&query, Rcode::SERVFAIL)),
            },
        };
        let Some(reply) = reply else { return };
        if write_tcp_msg(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn read_tcp_msg(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_tcp_msg(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await
}

// ---------------------------------------------------------------------------------------------
// Forwarding

/// Forwards `query` to the upstreams in turn ([`FORWARD_ROUNDS`] passes, each try at most
/// [`UPSTREAM_ATTEMPT_TIMEOUT`], all within [`FORWARD_TIMEOUT`]). A SERVFAIL or REFUSED
/// reply makes us try the next upstream, and is returned if none does better. `None`: no
/// reply at all.
async fn forward(query: &[u8], upstreams: &[SocketAddr], transport: Transport) -> Option<Vec<u8>> {
    let question = wire::parse_question(query).ok()?.1;
    let deadline = Instant::now() + FORWARD_TIMEOUT;
    let mut fallback = None;
    for up in upstreams
        .iter()
        .cycle()
        .take(upstreams.len() * FORWARD_ROUNDS)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let try_for = left.min(UPSTREAM_ATTEMPT_TIMEOUT);
        let exchange = async {
            match transport {
                Transport::Udp => exchange_udp(query, *up, question.as_ref()).await,
                Transport::Tcp => exchange_tcp(query, *up, question.as_ref()).await,
            }
        };
        match timeout(try_for, exchange).await {
            Ok(Ok(reply)) => {
                let rcode = Packet::new_checked(&reply[..]).map(|p| p.rcode());
                if matches!(rcode, Ok(Rcode::SERVFAIL | Rcode::REFUSED)) {
                    fallback = Some(reply);
                    continue;
                }
                return Some(reply);
            }
            Ok(Err(e)) => tracing::debug!("dns: forward to {up}: {e}"),
            Err(_) => tracing::debug!("dns: forward to {up}: timed out"),
        }
    }
    fallback
}

/// The query with a fresh random id, and that id. A per-forward id (and, over UDP, a fresh
/// ephemeral port) keeps clients' ids from colliding and makes replies hard to spoof.
fn with_fresh_id(query: &[u8]) -> std::io::Result<(Vec<u8>, u16)> {
    let id = random_id();
    let mut q = query.to_vec();
    Packet::new_checked(&mut q[..])
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?
        .set_id(id);
    Ok((q, id))
}

/// Whether `reply` answers our forwarded query: a response, with our id, for the same
/// question (an error reply without a question is accepted: servers send FORMERR bare).
/// On a match, returns it with the client's id restored.
fn match_reply(
    reply: &[u8],
    id: u16,
    question: Option<&wire::Question>,
    client_id: u16,
) -> Option<Vec<u8>> {
    let (header, q) = wire::parse_question(reply).ok()?;
    if !header.qr || header.id != id {
        return None;
    }
    let same = match (q.as_ref(), question) {
        (Some(a), Some(b)) => a.matches(b),
        (None, _) => header.rcode != 0,
        (Some(_), None) => false,
    };
    if !same {
        return None;
    }
    let mut out = reply.to_vec();
    Packet::new_checked(&mut out[..]).ok()?.set_id(client_id);
    Some(out)
}

fn unspecified_for(up: SocketAddr) -> SocketAddr {
    match up.ip() {
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

async fn exchange_udp(
    query: &[u8],
    up: SocketAddr,
    question: Option<&wire::Question>,
) -> std::io::Result<Vec<u8>> {
    let client_id = Packet::new_checked(query)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?
        .id();
    let (q, id) = with_fresh_id(query)?;
    let sock = UdpSocket::bind(unspecified_for(up)).await?;
    // Connected: the kernel drops datagrams from any other source.
    sock.connect(up).await?;
    sock.send(&q).await?;
    let mut buf = vec![0u8; wire::MAX_TCP_LEN];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Some(r) = match_reply(buf.get(..n).unwrap_or(&[]), id, question, client_id) {
            return Ok(r);
        }
    }
}

async fn exchange_tcp(
    query: &[u8],
    up: SocketAddr,
    question: Option<&wire::Question>,
) -> std::io::Result<Vec<u8>> {
    let client_id = Packet::new_checked(query)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?
        .id();
    let (q, id) = with_fresh_id(query)?;
    let mut stream = TcpStream::connect(up).await?;
    write_tcp_msg(&mut stream, &q).await?;
    let reply = read_tcp_msg(&mut stream).await?;
    match_reply(&reply, id, question, client_id)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "mismatched reply"))
}

/// A random 16-bit id from the kernel; a time-and-counter mix if getrandom fails.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: writes at most 2 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 2 {
        return u16::from_ne_bytes(b);
    }
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let c = COUNTER.fetch_add(0x9E37, Ordering::Relaxed) as u32;
    (nanos.wrapping_mul(2_654_435_761).wrapping_add(c) >> 16) as u16
}

// ---------------------------------------------------------------------------------------------
// resolv.conf

/// Drops a `#` or `;` comment (resolv.conf(5)).
fn strip_comment(line: &str) -> &str {
    line.split(['#', ';']).next().unwrap_or("")
}

/// The nameservers of a resolv.conf text, in order, port 53: every IPv4 and IPv6 address
/// (loopback ones included: forwarding happens in the daemon's namespace, where they work).
/// An IPv6 zone (`fe80::1%eth0`) is resolved to its interface index; an address that does
/// not parse is skipped. No nameserver line → empty (the caller decides on a default).
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = strip_comment(line).split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        if let Some(sa) = parse_nameserver(addr) {
            if !out.contains(&sa) {
                out.push(sa);
            }
        }
    }
    out
}

fn parse_nameserver(addr: &str) -> Option<SocketAddr> {
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, UPSTREAM_PORT));
    }
    let (ip, zone) = addr.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            let c = std::ffi::CString::new(zone).ok()?;
            // SAFETY: a valid C string; returns 0 for an unknown interface.
            let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
            if idx == 0 {
                return None;
            }
            idx
        }
    };
    Some(SocketAddr::V6(std::net::SocketAddrV6::new(
        ip,
        UPSTREAM_PORT,
        0,
        scope,
    )))
}

/// The resolv.conf a sandbox on a user-defined network gets, Docker style: `nameserver
/// 127.0.0.11`, the host's `search`/`domain` lines and `options` lines kept, and `options
/// ndots:0` unless the host sets ndots itself (Docker keeps the user's ndots). ndots:0 makes
/// a bare container name be tried as is before any search domain.
pub fn sandbox_resolv_conf(host_resolv_conf: &str) -> String {
    let mut search = Vec::new();
    let mut options = Vec::new();
    for line in host_resolv_conf.lines() {
        let body = strip_comment(line).trim();
        let mut words = body.split_whitespace();
        match words.next() {
            Some("search" | "domain") => search.push(body.to_string()),
            Some("options") => options.push(body.to_string()),
            _ => {}
        }
    }
    let host_ndots = options
        .iter()
        .any(|l| l.split_whitespace().any(|w| w.starts_with("ndots:")));
    let mut out = String::from("# Generated by vswitch: the embedded DNS server.\n");
    out.push_str(&format!("nameserver {DNS_ADDR}\n"));
    for l in &search {
        out.push_str(l);
        out.push('\n');
    }
    if !host_ndots {
        out.push_str("options ndots:0\n");
    }
    for l in &options {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
