//! Embedded DNS for sandboxes on user-defined networks: Docker's resolver at 127.0.0.11.
//!
//! - [`wire`]: the message format (parse/emit, never panics on any input);
//! - this module: the policy, without I/O — [`answer`] turns query bytes into a local
//!   response, a decision to forward upstream, or nothing — so tests and the `dns_parse` fuzz
//!   target drive it with bytes;
//! - [`server`]: the sockets inside a sandbox's namespace, and the forwarding.
//!
//! Local names are whatever the daemon's [`NameView`] says the asking sandbox can see
//! (container names, network aliases, link aliases); everything else is forwarded.

pub mod server;
pub mod wire;

use std::net::IpAddr;

pub use server::{
    sandbox_resolv_conf, upstreams_from_resolv_conf, DnsError, DnsStats, Resolver, DNS_ADDR,
    DNS_PORT, FORWARD_TIMEOUT, MAX_IN_FLIGHT,
};
pub use wire::{names_equal, normalize_name};
use wire::{Class, Message, Packet, Rcode, Record, Type};

/// What the daemon knows: answers for names visible to one asking sandbox.
pub trait NameView: Send + Sync + 'static {
    /// Addresses of `name` as seen by sandbox `asker` (container names, aliases, link aliases
    /// on the networks it shares with them). None: not a local name → forward upstream.
    ///
    /// `name` comes in [`normalize_name`] form (ASCII lower-case, no trailing dot), so a view
    /// keeps its keys normalized the same way; `Some(vec![])` makes a name local without
    /// addresses (NODATA for every type).
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>>;
}

/// What to do with one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send this response.
    Local(Vec<u8>),
    /// Not a local name: forward the query, unchanged but for its id, to the upstreams.
    Forward,
    /// Send nothing: shorter than a header (nothing to address a reply with), or itself a
    /// response (answering responses lets two resolvers ping-pong forever).
    Drop,
}

/// How the query arrived, which bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or what the query's EDNS record advertises up to
    /// [`wire::MAX_EDNS_UDP_LEN`]; longer answers are cut with TC set.
    Udp,
    /// Up to [`wire::MAX_TCP_LEN`].
    Tcp,
}

impl Transport {
    fn max_len(self, query: &Message) -> usize {
        match self {
            Transport::Tcp => wire::MAX_TCP_LEN,
            Transport::Udp => query.edns.as_ref().map_or(wire::MAX_UDP_LEN, |e| {
                usize::from(e.udp_payload_size).clamp(wire::MAX_UDP_LEN, wire::MAX_EDNS_UDP_LEN)
            }),
        }
    }
}

/// [`answer_over`] for a query that came over UDP.
///
/// A → the IPv4 records, AAAA → the IPv6 records of a local name (ANY → both); a local name
/// with no address of the asked family, or asked another type, → NOERROR without answers
/// (NODATA); the record list is rotated by `rotate` (round-robin: the caller passes a counter).
pub fn answer(query: &[u8], asker: &str, view: &dyn NameView, rotate: usize) -> Answer {
    answer_over(query, asker, view, rotate, Transport::Udp)
}

/// Decides what to do with `query` from sandbox `asker` (see [`answer`]): malformed queries
/// whose header is readable get FORMERR, opcodes other than QUERY get REFUSED, an EDNS
/// version other than 0 gets BADVERS.
pub fn answer_over(
    query: &[u8],
    asker: &str,
    view: &dyn NameView,
    rotate: usize,
    transport: Transport,
) -> Answer {
    let Ok(packet) = Packet::new_checked(query) else {
        return Answer::Drop;
    };
    if packet.qr() {
        return Answer::Drop;
    }
    // Checked before the body: an UPDATE may carry more records than we parse, and it is
    // refused either way.
    if packet.opcode() != wire::Opcode::QUERY {
        return local(refusal(query, &packet));
    }
    let msg = match Message::parse(query) {
        Ok(m) => m,
        Err(_) => return local(Message::header_only_response(&packet, Rcode::FORMERR)),
    };
    let Some(question) = msg.question else {
        return local(Message::response_to(&msg, Rcode::FORMERR));
    };
    if msg.edns.as_ref().is_some_and(|e| e.version != 0) {
        return local(Message::response_to(&msg, Rcode::BADVERS));
    }
    // Container names exist in the Internet class only; CHAOS and the rest are upstream's.
    if question.qclass != Class::IN && question.qclass != Class::ANY {
        return Answer::Forward;
    }
    let Some(key) = question.name.lookup_key() else {
        return Answer::Forward;
    };
    let Some(mut addrs) = view.lookup(asker, &key) else {
        return Answer::Forward;
    };
    addrs.retain(|ip| match question.qtype {
        Type::A => ip.is_ipv4(),
        Type::AAAA => ip.is_ipv6(),
        Type::ANY => true,
        _ => false,
    });
    if !addrs.is_empty() {
        let n = rotate % addrs.len();
        addrs.rotate_left(n);
    }
    let mut resp = Message::response_to(&msg, Rcode::NOERROR);
    // We are the authority for the sandbox's container names.
    resp.header.aa = true;
    resp.answers = addrs
        .into_iter()
        .take(wire::MAX_ANSWERS)
        .map(|ip| Record::address(question.name, ip, wire::LOCAL_TTL))
        .collect();
    resp.truncate_to(transport.max_len(&msg));
    local(resp)
}

/// A response with `rcode` to `query` (question and EDNS copied when the query parses, a
/// bare header otherwise): the server's SERVFAIL when forwarding fails or too many forwards
/// are in flight, and its NXDOMAIN when there is no upstream. `None` when [`answer`] would
/// drop the query.
pub fn error_reply(query: &[u8], rcode: Rcode) -> Option<Vec<u8>> {
    let packet = Packet::new_checked(query).ok()?;
    if packet.qr() {
        return None;
    }
    let msg = match Message::parse(query) {
        Ok(m) => Message::response_to(&m, rcode),
        Err(_) => Message::header_only_response(&packet, rcode),
    };
    msg.to_bytes().ok()
}

/// REFUSED for an opcode we do not serve, with the question copied when it can be read.
fn refusal(query: &[u8], packet: &Packet<&[u8]>) -> Message {
    match wire::parse_question(query) {
        Ok((_, question)) => {
            let mut m = Message::header_only_response(packet, Rcode::REFUSED);
            m.question = question;
            m
        }
        Err(_) => Message::header_only_response(packet, Rcode::REFUSED),
    }
}

fn local(msg: Message) -> Answer {
    // Our own messages always emit (a name is at most 255 bytes, answers are capped); a
    // failure here would be a bug, and dropping is the safe reaction to it.
    match msg.to_bytes() {
        Ok(b) => Answer::Local(b),
        Err(e) => {
            tracing::error!("dns: cannot emit a response: {e}");
            Answer::Drop
        }
    }
}

#[cfg(test)]
mod tests;
