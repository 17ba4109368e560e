//! Policy tests: [`answer`] driven with bytes, and property tests over arbitrary input.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::wire::{self, Class, Edns, Message, Name, Opcode, Packet, Rcode, Type};
use super::*;

/// A static view: "web2" (v4 only), "db" (v4 and v6), "many" (40 addresses), "nothing"
/// (local, no address), "secret" visible only to "web1".
struct StaticView(HashMap<&'static str, Vec<IpAddr>>);

fn view() -> StaticView {
    let mut m = HashMap::new();
    m.insert("web2", vec![IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]);
    m.insert(
        "db",
        vec![
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 4)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4)),
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 5)),
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 6)),
        ],
    );
    m.insert(
        "many",
        (0..40)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)))
            .collect(),
    );
    m.insert("nothing", vec![]);
    m.insert("secret", vec![IpAddr::V4(Ipv4Addr::new(172, 19, 0, 9))]);
    StaticView(m)
}

impl NameView for StaticView {
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        if name == "secret" && asker != "web1" {
            return None;
        }
        self.0.get(name).cloned()
    }
}

fn query(id: u16, name: &str, qtype: Type) -> Vec<u8> {
    let n = Name::from_dotted(name).expect("name");
    Message::query(id, n, qtype).to_bytes().expect("emit")
}

fn local(a: Answer) -> Message {
    match a {
        Answer::Local(b) => Message::parse(&b).expect("our response parses"),
        other => panic!("expected a local answer, got {other:?}"),
    }
}

fn ips(m: &Message) -> Vec<IpAddr> {
    m.answers.iter().filter_map(|r| r.ip()).collect()
}

#[test]
fn a_answer_for_local_name() {
    let q = query(0x1234, "web2", Type::A);
    let Answer::Local(bytes) = answer(&q, "web1", &view(), 0) else {
        panic!("not local");
    };
    // Hand-made expected bytes: header, question copied, one compressed A record, TTL 600.
    let expect: [u8; 38] = [
        0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, //
        4, b'w', b'e', b'b', b'2', 0, 0, 1, 0, 1, //
        0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4, 172, 18, 0, 3,
    ];
    assert_eq!(bytes, expect);
}

#[test]
fn aaaa_nodata_and_other_types() {
    // web2 has no IPv6 address: NOERROR, no answers (NODATA), not NXDOMAIN.
    let m = local(answer(&query(1, "web2", Type::AAAA), "web1", &view(), 0));
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert!(m.answers.is_empty());
    assert!(m.header.aa && m.header.qr);
    // MX of a local name: NODATA too.
    let m = local(answer(&query(2, "web2", Type::MX), "web1", &view(), 0));
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert!(m.answers.is_empty());
    // A local name with no address at all.
    let m = local(answer(&query(3, "nothing", Type::A), "web1", &view(), 0));
    assert!(m.answers.is_empty());
    // AAAA of db: only the IPv6 one; A: only the three IPv4 ones; ANY: all four.
    let m = local(answer(&query(4, "db", Type::AAAA), "web1", &view(), 0));
    assert_eq!(
        ips(&m),
        [IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4))]
    );
    assert_eq!(m.answers[0].rtype, Type::AAAA);
    let m = local(answer(&query(5, "db", Type::A), "web1", &view(), 0));
    assert_eq!(ips(&m).len(), 3);
    assert!(m.answers.iter().all(|r| r.rtype == Type::A && r.ttl == 600));
    let m = local(answer(&query(6, "db", Type::ANY), "web1", &view(), 0));
    assert_eq!(ips(&m).len(), 4);
}

#[test]
fn unknown_names_forwarded_and_visibility() {
    assert_eq!(
        answer(&query(1, "example.com", Type::A), "web1", &view(), 0),
        Answer::Forward
    );
    // "secret" is local for web1 only.
    assert!(matches!(
        answer(&query(1, "secret", Type::A), "web1", &view(), 0),
        Answer::Local(_)
    ));
    assert_eq!(
        answer(&query(1, "secret", Type::A), "web3", &view(), 0),
        Answer::Forward
    );
    // CHAOS class goes upstream even for a local name.
    let mut m = Message::query(1, Name::from_dotted("web2").expect("n"), Type::TXT);
    if let Some(q) = m.question.as_mut() {
        q.qclass = Class::CH;
    }
    let b = m.to_bytes().expect("emit");
    assert_eq!(answer(&b, "web1", &view(), 0), Answer::Forward);
}

#[test]
fn nxdomain_error_reply() {
    let q = query(0x4242, "nope", Type::A);
    let r = Message::parse(&error_reply(&q, Rcode::NXDOMAIN).expect("reply")).expect("parse");
    assert_eq!(r.rcode(), Rcode::NXDOMAIN);
    assert_eq!(r.header.id, 0x4242);
    assert!(r.header.qr && r.header.rd && r.header.ra && !r.header.aa);
    assert_eq!(
        r.question.map(|q| q.name),
        Some(Name::from_dotted("nope").expect("n"))
    );
    // Responses and short garbage get nothing.
    assert_eq!(error_reply(&[0; 11], Rcode::SERVFAIL), None);
    let mut resp = q.clone();
    resp[2] |= 0x80;
    assert_eq!(error_reply(&resp, Rcode::SERVFAIL), None);
}

#[test]
fn case_insensitive_and_trailing_dot() {
    for n in ["WEB2", "Web2.", "web2."] {
        let q = query(9, n, Type::A);
        let m = local(answer(&q, "web1", &view(), 0));
        assert_eq!(ips(&m), [IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]);
        // The question comes back as asked, case preserved (0x20 resolvers check it).
        assert_eq!(
            m.question.map(|q| q.name),
            Some(Name::from_dotted(n).expect("n"))
        );
        let Answer::Local(b) = answer(&q, "web1", &view(), 0) else {
            panic!("local");
        };
        // Question bytes identical to the query's.
        assert_eq!(b[12..q.len()], q[12..]);
    }
}

#[test]
fn round_robin_rotation() {
    let q = query(1, "db", Type::A);
    let first: Vec<_> = (0..4)
        .map(|r| ips(&local(answer(&q, "web1", &view(), r)))[0])
        .collect();
    assert_eq!(
        first,
        [
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 4)),
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 5)),
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 6)),
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 4)),
        ]
    );
    // Rotation keeps every record.
    let mut all = ips(&local(answer(&q, "web1", &view(), 2)));
    all.sort();
    assert_eq!(all.len(), 3);
    // Huge counters are fine.
    let _ = answer(&q, "web1", &view(), usize::MAX);
}

#[test]
fn answers_capped_and_udp_truncated() {
    let q = query(1, "many", Type::A);
    // UDP without EDNS: 512 bytes → 30 answers, TC set.
    let m = local(answer(&q, "web1", &view(), 0));
    assert!(m.header.tc);
    assert_eq!(m.answers.len(), 30);
    // TCP: capped at MAX_ANSWERS, no TC.
    let m = local(answer_over(&q, "web1", &view(), 0, Transport::Tcp));
    assert!(!m.header.tc);
    assert_eq!(m.answers.len(), wire::MAX_ANSWERS);
    // UDP with EDNS 4096: fits MAX_ANSWERS, OPT answered with our size.
    let mut qm = Message::parse(&q).expect("q");
    qm.edns = Some(Edns {
        udp_payload_size: 4096,
        ext_rcode: 0,
        version: 0,
        dnssec_ok: false,
        options: vec![],
    });
    let m = local(answer(&qm.to_bytes().expect("emit"), "web1", &view(), 0));
    assert!(!m.header.tc);
    assert_eq!(m.answers.len(), wire::MAX_ANSWERS);
    assert_eq!(
        m.edns.map(|e| e.udp_payload_size),
        Some(wire::MAX_EDNS_UDP_LEN as u16)
    );
}

#[test]
fn formerr_refused_badvers_and_drop() {
    // Short garbage: dropped.
    assert_eq!(answer(&[0xAB; 11], "web1", &view(), 0), Answer::Drop);
    assert_eq!(answer(&[], "web1", &view(), 0), Answer::Drop);
    // A readable header and a broken body: FORMERR, header only.
    let mut bad = query(0x0101, "web2", Type::A);
    bad.truncate(15);
    let m = local(answer(&bad, "web1", &view(), 0));
    assert_eq!(m.rcode(), Rcode::FORMERR);
    assert_eq!(m.header.id, 0x0101);
    assert!(m.question.is_none());
    // A compression loop in the question: FORMERR.
    let mut lp = query(7, "web2", Type::A);
    lp.truncate(12);
    lp.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    assert_eq!(
        local(answer(&lp, "web1", &view(), 0)).rcode(),
        Rcode::FORMERR
    );
    // Two questions: FORMERR; none: FORMERR.
    let mut two = query(7, "web2", Type::A);
    two[5] = 2;
    assert_eq!(
        local(answer(&two, "web1", &view(), 0)).rcode(),
        Rcode::FORMERR
    );
    let none = [0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        local(answer(&none, "web1", &view(), 0)).rcode(),
        Rcode::FORMERR
    );
    // A response: dropped.
    let mut resp = query(7, "web2", Type::A);
    resp[2] |= 0x80;
    assert_eq!(answer(&resp, "web1", &view(), 0), Answer::Drop);
    // Other opcodes: REFUSED, question copied.
    for op in [
        Opcode::IQUERY,
        Opcode::STATUS,
        Opcode::NOTIFY,
        Opcode::UPDATE,
    ] {
        let mut m = Message::parse(&query(8, "web2", Type::A)).expect("q");
        m.header.opcode = op;
        let r = local(answer(&m.to_bytes().expect("emit"), "web1", &view(), 0));
        assert_eq!(r.rcode(), Rcode::REFUSED);
        assert_eq!(r.header.opcode, op);
        assert!(r.answers.is_empty());
        assert!(r.question.is_some());
    }
    // EDNS version 1: BADVERS (extended rcode 16 through the OPT record).
    let mut m = Message::parse(&query(9, "web2", Type::A)).expect("q");
    m.edns = Some(Edns {
        udp_payload_size: 1232,
        ext_rcode: 0,
        version: 1,
        dnssec_ok: false,
        options: vec![],
    });
    let r = local(answer(&m.to_bytes().expect("emit"), "web1", &view(), 0));
    assert_eq!(r.rcode(), Rcode::BADVERS);
    let p = Packet::new_checked(&[0u8; 12][..]).expect("h");
    assert_eq!(p.rcode(), Rcode::NOERROR);
}

/// Checks the invariants of whatever [`answer`] does with `bytes`.
fn check_any(bytes: &[u8], transport: Transport) -> std::result::Result<(), TestCaseError> {
    let a = answer_over(bytes, "web1", &view(), 3, transport);
    match a {
        Answer::Drop => {
            let p = Packet::new_checked(bytes);
            prop_assert!(p.is_err() || p.is_ok_and(|p| p.qr()));
        }
        Answer::Forward => {
            prop_assert!(Message::parse(bytes).is_ok());
        }
        Answer::Local(r) => {
            let m = Message::parse(&r).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let p = Packet::new_checked(bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert!(m.header.qr);
            prop_assert_eq!(m.header.id, p.id());
            let limit = match transport {
                Transport::Udp => wire::MAX_EDNS_UDP_LEN,
                Transport::Tcp => wire::MAX_TCP_LEN,
            };
            prop_assert!(r.len() <= limit);
        }
    }
    Ok(())
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web2".to_string()),
        Just("DB".to_string()),
        Just("many".to_string()),
        "[a-zA-Z0-9_-]{1,20}",
    ]
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&bytes);
        let _ = wire::parse_question(&bytes);
        for start in 0..bytes.len().min(40) {
            let _ = Name::parse(&bytes, start);
        }
        check_any(&bytes, Transport::Udp)?;
        check_any(&bytes, Transport::Tcp)?;
    }

    #[test]
    fn header_then_any_bytes(
        flags in any::<u16>(),
        counts in proptest::collection::vec(0u16..3, 4),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // Plausible headers reach deeper into the parser than uniform bytes.
        let mut b = vec![0x55, 0xAA];
        b.extend_from_slice(&flags.to_be_bytes());
        for c in &counts {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b.extend_from_slice(&body);
        check_any(&b, Transport::Udp)?;
    }

    #[test]
    fn well_formed_response_for_any_parsable_query(
        id in any::<u16>(),
        labels in proptest::collection::vec(label(), 1..4),
        qtype in prop_oneof![Just(Type::A), Just(Type::AAAA), Just(Type::ANY), Just(Type::MX), any::<u16>().prop_map(Type)],
        edns in proptest::option::of(0u16..5000),
        rotate in any::<usize>(),
    ) {
        let name = labels.join(".");
        let mut q = Message::query(id, Name::from_dotted(&name).expect("valid"), qtype);
        q.edns = edns.map(|s| Edns { udp_payload_size: s, ext_rcode: 0, version: 0, dnssec_ok: false, options: vec![] });
        let bytes = q.to_bytes().expect("emit");
        let parsed = Message::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&q));
        match answer(&bytes, "web1", &view(), rotate) {
            Answer::Local(r) => {
                let m = Message::parse(&r).expect("parses");
                prop_assert!(m.header.qr && m.header.aa);
                prop_assert_eq!(m.header.id, id);
                prop_assert_eq!(m.rcode(), Rcode::NOERROR);
                prop_assert_eq!(m.question, q.question);
                prop_assert_eq!(m.edns.is_some(), edns.is_some());
                prop_assert!(r.len() <= wire::MAX_EDNS_UDP_LEN);
                prop_assert!(edns.is_some() || r.len() <= wire::MAX_UDP_LEN);
                let key = wire::normalize_name(&name);
                let known = view().lookup("web1", &key).expect("local");
                for rec in &m.answers {
                    prop_assert!(rec.name.eq_ignore_case(&q.question.expect("q").name));
                    let ip = rec.ip().expect("address");
                    prop_assert!(known.contains(&ip));
                }
            }
            Answer::Forward => {
                prop_assert!(view().lookup("web1", &wire::normalize_name(&name)).is_none());
            }
            Answer::Drop => prop_assert!(false, "dropped a valid query"),
        }
    }
}
