//! The embedded DNS server's parser and policy on arbitrary bytes: nothing may panic, every
//! message that parses emits and parses back to the same value, and every local response
//! `answer()` builds parses with our own parser, is a response (QR) with the query's id and
//! fits its transport's size limit.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vswitch::dns::wire::{self, Message, Name, Packet};
use vswitch::dns::{answer, answer_over, error_reply, Answer, NameView, Transport};

/// Offsets at which a name is parsed on its own (compression pointers reach back from them).
const NAME_OFFSETS: usize = 48;

/// A few local names, one with many records (truncation), one with none (NODATA).
struct View;

impl NameView for View {
    fn lookup(&self, _asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        match name {
            "web2" | "a" => Some(vec![IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]),
            "db" => Some(vec![
                IpAddr::V4(Ipv4Addr::new(172, 18, 0, 4)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4)),
            ]),
            "many" => Some(
                (0..40)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
                    .collect(),
            ),
            "empty" => Some(vec![]),
            _ => None,
        }
    }
}

fn check_answer(data: &[u8], a: Answer, transport: Transport) {
    match a {
        Answer::Local(r) => {
            let m = Message::parse(&r).expect("our response parses");
            let q = Packet::new_checked(data).expect("answered queries have a header");
            assert!(m.header.qr, "response without QR");
            assert_eq!(m.header.id, q.id(), "response id");
            let limit = match transport {
                Transport::Udp => wire::MAX_EDNS_UDP_LEN,
                Transport::Tcp => wire::MAX_TCP_LEN,
            };
            assert!(r.len() <= limit, "response of {} bytes", r.len());
            assert!(m.answers.len() <= wire::MAX_ANSWERS);
        }
        Answer::Forward => {
            assert!(
                Message::parse(data).is_ok(),
                "forwarding an unparsable query"
            );
        }
        Answer::Drop => {
            let p = Packet::new_checked(data);
            assert!(p.is_err() || p.is_ok_and(|p| p.qr()), "dropped a query");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let rotate = data.len().wrapping_mul(7) ^ usize::from(data.last().copied().unwrap_or(0));

    if let Ok(m) = Message::parse(data) {
        if let Ok(bytes) = m.to_bytes() {
            assert_eq!(
                Message::parse(&bytes).as_ref(),
                Ok(&m),
                "emit/parse round trip"
            );
        }
    }
    let _ = wire::parse_question(data);
    for start in 0..data.len().min(NAME_OFFSETS) {
        if let Ok((n, next)) = Name::parse(data, start) {
            assert!(n.wire_len() <= wire::MAX_NAME_LEN && next <= data.len());
            let _ = (n.to_string(), n.lookup_key());
        }
    }

    check_answer(data, answer(data, "web1", &View, rotate), Transport::Udp);
    check_answer(
        data,
        answer_over(data, "web1", &View, rotate, Transport::Tcp),
        Transport::Tcp,
    );
    for rcode in [wire::Rcode::SERVFAIL, wire::Rcode::NXDOMAIN] {
        if let Some(r) = error_reply(data, rcode) {
            let m = Message::parse(&r).expect("error reply parses");
            assert!(m.header.qr);
            assert_eq!(m.rcode(), rcode);
        }
    }
});
