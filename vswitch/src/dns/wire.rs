//! DNS messages (RFC 1035 §4, EDNS(0) per RFC 6891), in the style of smoltcp's `wire`:
//!
//! - [`Packet`] is a zero-copy view of the fixed 12-byte header (id, flags, counts);
//! - [`Name`], [`Question`], [`Record`], [`Edns`] and [`Message`] are validated
//!   representations with `parse` (from the message bytes) and `emit` (into a caller's buffer,
//!   length checked).
//!
//! ```text
//!  0       2       4        6        8        10       12
//!  |  id   | flags |qdcount |ancount |nscount |arcount | question… answers… authority… additional…
//!  flags: QR(15) OPCODE(14..11) AA(10) TC(9) RD(8) RA(7) Z(6) AD(5) CD(4) RCODE(3..0)
//! ```
//!
//! Parsers never panic on any input: every read is bounds checked and returns
//! [`WireError`]; names are decompressed loop-safely (a pointer must go strictly before the
//! run of labels it was reached from, and at most [`MAX_POINTER_HOPS`] are followed); every
//! count is capped by a named constant, so a hostile message cannot make us allocate much or
//! spin.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Largest message over UDP without EDNS (RFC 1035 §4.2.1).
pub const MAX_UDP_LEN: usize = 512;
/// Largest UDP response sent to an EDNS client, whatever it advertises: the DNS flag day 2020
/// value, small enough never to need IP fragmentation.
pub const MAX_EDNS_UDP_LEN: usize = 1232;
/// Largest message over TCP (its two-byte length prefix, RFC 1035 §4.2.2).
pub const MAX_TCP_LEN: usize = 65535;
/// Longest name in wire form, length octets and the root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label: the two top bits of a length octet tag pointers (RFC 1035 §4.1.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Most labels in a name: 255 bytes hold at most 127 one-byte labels and the root.
pub const MAX_LABELS: usize = 127;
/// Most compression pointers followed while reading one name. Backward-only pointers already
/// rule out loops; this bounds the work a long chain can cost.
pub const MAX_POINTER_HOPS: usize = 32;
/// Questions per message: every resolver sends one, and RFC 9619 makes more an error.
pub const MAX_QUESTIONS: usize = 1;
/// Resource records (all three sections together) that [`Message::parse`] accepts: a query
/// carries at most an OPT record, our responses at most [`MAX_ANSWERS`] and an OPT.
pub const MAX_RECORDS: usize = 64;
/// Answers put in one response (several containers sharing an alias). A UDP response is also
/// cut to its size limit, with TC set so that the client retries over TCP.
pub const MAX_ANSWERS: usize = 32;
/// TTL of local answers, as Docker's embedded DNS gives.
pub const LOCAL_TTL: u32 = 600;

/// Type, class, TTL and RDLENGTH after a record's name.
const RR_FIXED_LEN: usize = 10;
/// Type and class after a question's name.
const QUESTION_FIXED_LEN: usize = 4;
/// An OPT record with no options: root name, then the fixed part.
const OPT_LEN: usize = 1 + RR_FIXED_LEN;
/// Top two bits of a length octet: 00 label, 11 pointer (01 and 10 are obsolete/reserved).
const LABEL_TAG_MASK: u8 = 0xC0;
const POINTER_TAG: u8 = 0xC0;
/// Length of a compression pointer.
const POINTER_LEN: usize = 2;
/// Where the question name starts in every message: the target of our answers' pointers.
const QUESTION_OFFSET: usize = HEADER_LEN;

const ID: usize = 0;
const FLAGS: usize = 2;
const QDCOUNT: usize = 4;
const ANCOUNT: usize = 6;
const NSCOUNT: usize = 8;
const ARCOUNT: usize = 10;

const FLAG_QR: u16 = 0x8000;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0xF;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;
const RCODE_MASK: u16 = 0xF;
/// The DO bit in an OPT record's TTL field (RFC 3225).
const EDNS_DO: u32 = 0x8000;

/// Everything that can go wrong while parsing or emitting a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends before a field or a length it announces.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A field holds a value the protocol forbids.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Well-formed perhaps, but beyond one of this module's limits.
    #[error("over the limit of {0}")]
    Limit(&'static str),
    /// The output buffer given to an `emit` call is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the output needs.
        need: usize,
        /// Bytes the buffer holds.
        have: usize,
    },
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, WireError>;

/// `len` bytes of `msg` from `start`, or [`WireError::Truncated`].
fn slice(msg: &[u8], start: usize, len: usize) -> Result<&[u8]> {
    let end = start.checked_add(len).ok_or(WireError::Limit("offset"))?;
    msg.get(start..end).ok_or(WireError::Truncated {
        need: end,
        have: msg.len(),
    })
}

fn be16(msg: &[u8], off: usize) -> Result<u16> {
    let b = slice(msg, off, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(msg: &[u8], off: usize) -> Result<u32> {
    let b = slice(msg, off, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A bounds-checked cursor for emitting into a caller's buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos + bytes.len();
        let have = self.buf.len();
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall { need: end, have })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<()> {
        self.put(&v.to_be_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<()> {
        self.put(&v.to_be_bytes())
    }
}

/// A count as the 16-bit header field, or [`WireError::Limit`].
fn count16(n: usize) -> Result<u16> {
    u16::try_from(n).map_err(|_| WireError::Limit("section count"))
}

// ---------------------------------------------------------------------------------------------
// Numeric newtypes

/// The 4-bit OPCODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    /// A standard query, the only one we answer.
    pub const QUERY: Opcode = Opcode(0);
    /// Inverse query (obsolete).
    pub const IQUERY: Opcode = Opcode(1);
    /// Server status request.
    pub const STATUS: Opcode = Opcode(2);
    /// Zone change notification (RFC 1996).
    pub const NOTIFY: Opcode = Opcode(4);
    /// Dynamic update (RFC 2136).
    pub const UPDATE: Opcode = Opcode(5);
}

/// A response code, 12 bits with EDNS (4 in the header, 8 more in the OPT record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// The query could not be interpreted.
    pub const FORMERR: Rcode = Rcode(1);
    /// The server failed (here: upstreams unreachable, or too many forwards in flight).
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist.
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// Not implemented.
    pub const NOTIMP: Rcode = Rcode(4);
    /// Refused (here: any opcode but QUERY).
    pub const REFUSED: Rcode = Rcode(5);
    /// Unsupported EDNS version (RFC 6891 §6.1.3); needs an OPT record to express.
    pub const BADVERS: Rcode = Rcode(16);

    /// The 4 bits carried in the header.
    pub fn header_bits(self) -> u8 {
        (self.0 & RCODE_MASK) as u8
    }
    /// The 8 bits carried in the OPT record.
    pub fn extended_bits(self) -> u8 {
        ((self.0 >> 4) & 0xFF) as u8
    }
}

/// A record (or query) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type(pub u16);

impl Type {
    /// IPv4 address.
    pub const A: Type = Type(1);
    /// Name server.
    pub const NS: Type = Type(2);
    /// Canonical name.
    pub const CNAME: Type = Type(5);
    /// Start of authority.
    pub const SOA: Type = Type(6);
    /// Pointer (reverse lookups).
    pub const PTR: Type = Type(12);
    /// Mail exchanger.
    pub const MX: Type = Type(15);
    /// Text.
    pub const TXT: Type = Type(16);
    /// IPv6 address.
    pub const AAAA: Type = Type(28);
    /// Service location.
    pub const SRV: Type = Type(33);
    /// EDNS pseudo-record.
    pub const OPT: Type = Type(41);
    /// Any type (query only).
    pub const ANY: Type = Type(255);
}

/// A record (or query) class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class(pub u16);

impl Class {
    /// Internet.
    pub const IN: Class = Class(1);
    /// Chaos (`version.bind` and friends).
    pub const CH: Class = Class(3);
    /// Any class (query only).
    pub const ANY: Class = Class(255);
}

// ---------------------------------------------------------------------------------------------
// Header view

/// A zero-copy view of a DNS message's fixed header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the fixed header. The body is not looked
    /// at: that is [`Message::parse`]'s job.
    pub fn new_checked(buffer: T) -> Result<Self> {
        slice(buffer.as_ref(), 0, HEADER_LEN)?;
        Ok(Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    // `new_checked` guaranteed the header, so the `unwrap_or` defaults are never taken; they
    // only keep the accessors panic-free by construction.
    fn field(&self, off: usize) -> u16 {
        be16(self.buffer.as_ref(), off).unwrap_or(0)
    }

    /// Message id.
    pub fn id(&self) -> u16 {
        self.field(ID)
    }
    /// The raw flags word.
    pub fn flags(&self) -> u16 {
        self.field(FLAGS)
    }
    /// QR: this is a response.
    pub fn qr(&self) -> bool {
        self.flags() & FLAG_QR != 0
    }
    /// OPCODE.
    pub fn opcode(&self) -> Opcode {
        Opcode(((self.flags() >> OPCODE_SHIFT) & OPCODE_MASK) as u8)
    }
    /// AA: authoritative answer.
    pub fn aa(&self) -> bool {
        self.flags() & FLAG_AA != 0
    }
    /// TC: truncated.
    pub fn tc(&self) -> bool {
        self.flags() & FLAG_TC != 0
    }
    /// RD: recursion desired.
    pub fn rd(&self) -> bool {
        self.flags() & FLAG_RD != 0
    }
    /// RA: recursion available.
    pub fn ra(&self) -> bool {
        self.flags() & FLAG_RA != 0
    }
    /// AD: authentic data (RFC 4035).
    pub fn ad(&self) -> bool {
        self.flags() & FLAG_AD != 0
    }
    /// CD: checking disabled (RFC 4035).
    pub fn cd(&self) -> bool {
        self.flags() & FLAG_CD != 0
    }
    /// The header's 4 RCODE bits (EDNS may extend them).
    pub fn rcode(&self) -> Rcode {
        Rcode(self.flags() & RCODE_MASK)
    }
    /// Number of questions.
    pub fn qdcount(&self) -> u16 {
        self.field(QDCOUNT)
    }
    /// Number of answer records.
    pub fn ancount(&self) -> u16 {
        self.field(ANCOUNT)
    }
    /// Number of authority records.
    pub fn nscount(&self) -> u16 {
        self.field(NSCOUNT)
    }
    /// Number of additional records.
    pub fn arcount(&self) -> u16 {
        self.field(ARCOUNT)
    }
    /// Everything after the header.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_field(&mut self, off: usize, v: u16) {
        if let Some(dst) = self.buffer.as_mut().get_mut(off..off + 2) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }
    /// Sets the id (the forwarder swaps in its own and restores the client's).
    pub fn set_id(&mut self, v: u16) {
        self.set_field(ID, v);
    }
    /// Sets the raw flags word.
    pub fn set_flags(&mut self, v: u16) {
        self.set_field(FLAGS, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Header representation

/// The header's id and flags. The four counts are not stored: [`Message`] derives them from
/// its sections. The reserved Z bit is ignored on parse and sent as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Message id, echoed in the response.
    pub id: u16,
    /// This is a response.
    pub qr: bool,
    /// Kind of query.
    pub opcode: Opcode,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Authentic data.
    pub ad: bool,
    /// Checking disabled.
    pub cd: bool,
    /// The header's 4 RCODE bits.
    pub rcode: u8,
}

impl Default for Opcode {
    fn default() -> Self {
        Opcode::QUERY
    }
}

impl Header {
    /// Reads the id and flags of a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Header {
        Header {
            id: p.id(),
            qr: p.qr(),
            opcode: p.opcode(),
            aa: p.aa(),
            tc: p.tc(),
            rd: p.rd(),
            ra: p.ra(),
            ad: p.ad(),
            cd: p.cd(),
            rcode: p.rcode().header_bits(),
        }
    }

    /// The flags word.
    pub fn flags(&self) -> u16 {
        let bit = |b: bool, f: u16| if b { f } else { 0 };
        bit(self.qr, FLAG_QR)
            | ((u16::from(self.opcode.0) & OPCODE_MASK) << OPCODE_SHIFT)
            | bit(self.aa, FLAG_AA)
            | bit(self.tc, FLAG_TC)
            | bit(self.rd, FLAG_RD)
            | bit(self.ra, FLAG_RA)
            | bit(self.ad, FLAG_AD)
            | bit(self.cd, FLAG_CD)
            | (u16::from(self.rcode) & RCODE_MASK)
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// A domain name, kept uncompressed in wire form (length-prefixed labels, then the root's
/// zero) with the case it arrived in: questions are copied back byte for byte (RFC 1035
/// §7.3 resolvers check it, some with random case as a spoofing defence).
#[derive(Clone, Copy)]
pub struct Name {
    wire: [u8; MAX_NAME_LEN],
    len: u8,
}

impl Name {
    /// The root name (`.`).
    pub fn root() -> Name {
        // `wire[0] == 0` is the root label.
        Name {
            wire: [0; MAX_NAME_LEN],
            len: 1,
        }
    }

    /// Reads the name at `start` of `msg`, following compression pointers. Returns the name
    /// and the offset just past it where it started (past its first pointer, if any).
    pub fn parse(msg: &[u8], start: usize) -> Result<(Name, usize)> {
        let mut name = Name {
            wire: [0; MAX_NAME_LEN],
            len: 0,
        };
        let mut out = 0usize;
        let mut pos = start;
        // Start of the run of labels being read: a pointer must go strictly before it, so
        // the sequence of jump targets decreases and the walk ends.
        let mut run_start = start;
        let mut next = None;
        let mut hops = 0usize;
        let mut labels = 0usize;
        loop {
            let len = *slice(msg, pos, 1)?.first().unwrap_or(&0);
            match len & LABEL_TAG_MASK {
                0 if len == 0 => {
                    *name
                        .wire
                        .get_mut(out)
                        .ok_or(WireError::Limit("name length"))? = 0;
                    out += 1;
                    name.len = u8::try_from(out).map_err(|_| WireError::Limit("name length"))?;
                    return Ok((name, next.unwrap_or(pos + 1)));
                }
                0 => {
                    let l = usize::from(len);
                    let label = slice(msg, pos + 1, l)?;
                    labels += 1;
                    if labels > MAX_LABELS {
                        return Err(WireError::Limit("labels"));
                    }
                    // This label and at least the root's zero must fit.
                    if out + 1 + l + 1 > MAX_NAME_LEN {
                        return Err(WireError::Limit("name length"));
                    }
                    let dst = name
                        .wire
                        .get_mut(out..out + 1 + l)
                        .ok_or(WireError::Limit("name length"))?;
                    if let Some((first, rest)) = dst.split_first_mut() {
                        *first = len;
                        rest.copy_from_slice(label);
                    }
                    out += 1 + l;
                    pos += 1 + l;
                }
                POINTER_TAG => {
                    let p = be16(msg, pos)?;
                    let target = usize::from(p & !(u16::from(LABEL_TAG_MASK) << 8));
                    next.get_or_insert(pos + POINTER_LEN);
                    hops += 1;
                    if hops > MAX_POINTER_HOPS {
                        return Err(WireError::Limit("compression pointer hops"));
                    }
                    if target >= run_start {
                        return Err(WireError::Malformed("compression pointer not backwards"));
                    }
                    run_start = target;
                    pos = target;
                }
                _ => return Err(WireError::Malformed("label type")),
            }
        }
    }

    /// Builds a name from dotted text (`web2`, `web2.`, `.` for the root), without escapes.
    /// Empty labels, labels over [`MAX_LABEL_LEN`] and names over [`MAX_NAME_LEN`] are errors.
    pub fn from_dotted(text: &str) -> Result<Name> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut name = Name::root();
        if text.is_empty() {
            return Ok(name);
        }
        let mut out = 0usize;
        for (i, label) in text.split('.').enumerate() {
            let l = label.len();
            if l == 0 {
                return Err(WireError::Malformed("empty label"));
            }
            if l > MAX_LABEL_LEN {
                return Err(WireError::Limit("label length"));
            }
            if i >= MAX_LABELS || out + 1 + l + 1 > MAX_NAME_LEN {
                return Err(WireError::Limit("name length"));
            }
            let dst = name
                .wire
                .get_mut(out..out + 1 + l)
                .ok_or(WireError::Limit("name length"))?;
            if let Some((first, rest)) = dst.split_first_mut() {
                *first = l as u8;
                rest.copy_from_slice(label.as_bytes());
            }
            out += 1 + l;
        }
        *name
            .wire
            .get_mut(out)
            .ok_or(WireError::Limit("name length"))? = 0;
        name.len = u8::try_from(out + 1).map_err(|_| WireError::Limit("name length"))?;
        Ok(name)
    }

    /// The uncompressed wire form, ending with the root's zero.
    pub fn as_wire(&self) -> &[u8] {
        self.wire.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length of the wire form.
    pub fn wire_len(&self) -> usize {
        usize::from(self.len)
    }

    /// `true` for the root name.
    pub fn is_root(&self) -> bool {
        self.len <= 1
    }

    /// The labels, most specific first, without length octets.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            rest: self.as_wire(),
        }
    }

    /// Equality ignoring ASCII case (RFC 4343). Length octets are below 64, so folding
    /// them as ASCII letters is harmless.
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.as_wire().eq_ignore_ascii_case(other.as_wire())
    }

    /// The key a [`NameView`](super::NameView) is asked about: lower-case, labels joined by
    /// dots, no trailing dot (`""` for the root). `None` when a label holds a byte no
    /// container name can have (a dot, a space, a control or non-ASCII byte): such a name is
    /// never local.
    pub fn lookup_key(&self) -> Option<String> {
        let mut key = String::with_capacity(self.wire_len());
        for (i, label) in self.labels().enumerate() {
            if label.iter().any(|&b| !b.is_ascii_graphic() || b == b'.') {
                return None;
            }
            if i > 0 {
                key.push('.');
            }
            key.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        Some(key)
    }
}

impl PartialEq for Name {
    /// Exact (case-sensitive) equality of the wire forms; see [`Name::eq_ignore_case`].
    fn eq(&self, other: &Name) -> bool {
        self.as_wire() == other.as_wire()
    }
}

impl Eq for Name {}

impl fmt::Display for Name {
    /// Presentation format with a trailing dot; dots, backslashes and non-printable bytes
    /// inside labels are escaped (`\.`, `\\`, `\DDD`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", char::from(b))?,
                    0x21..=0x7e => write!(f, "{}", char::from(b))?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Iterator over a [`Name`]'s labels.
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        if len == 0 {
            self.rest = &[];
            return None;
        }
        let label = tail.get(..usize::from(len))?;
        self.rest = tail.get(usize::from(len)..).unwrap_or(&[]);
        Some(label)
    }
}

/// Whether two dotted names are the same name: ASCII case ignored, one trailing dot ignored.
pub fn names_equal(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// The form [`Name::lookup_key`] gives: lower-case, no trailing dot. A
/// [`NameView`](super::NameView) keeps its keys in this form.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Question

/// One entry of the question section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// The type asked for.
    pub qtype: Type,
    /// The class asked for.
    pub qclass: Class,
}

impl Question {
    /// Reads the question at `start`; returns it and the offset after it.
    pub fn parse(msg: &[u8], start: usize) -> Result<(Question, usize)> {
        let (name, off) = Name::parse(msg, start)?;
        let q = Question {
            name,
            qtype: Type(be16(msg, off)?),
            qclass: Class(be16(msg, off + 2)?),
        };
        Ok((q, off + QUESTION_FIXED_LEN))
    }

    /// Same name (ignoring case), type and class: how a reply is matched to its query.
    pub fn matches(&self, other: &Question) -> bool {
        self.name.eq_ignore_case(&other.name)
            && self.qtype == other.qtype
            && self.qclass == other.qclass
    }

    /// Bytes [`Question::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.name.wire_len() + QUESTION_FIXED_LEN
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put(self.name.as_wire())?;
        w.u16(self.qtype.0)?;
        w.u16(self.qclass.0)
    }

    /// Writes the question (name uncompressed) at the start of `buf`; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer { buf, pos: 0 };
        self.write(&mut w)?;
        Ok(w.pos)
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An A record's address.
    A(Ipv4Addr),
    /// An AAAA record's address.
    Aaaa(Ipv6Addr),
    /// Anything else, raw. Emitted verbatim, so it must not hold compression pointers when
    /// moved to another message (we never build such records).
    Other(Vec<u8>),
}

impl RData {
    fn len(&self) -> usize {
        match self {
            RData::A(_) => 4,
            RData::Aaaa(_) => 16,
            RData::Other(b) => b.len(),
        }
    }
}

/// A resource record of the answer, authority or additional section (not OPT, which is
/// [`Edns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// Type.
    pub rtype: Type,
    /// Class.
    pub class: Class,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Data.
    pub data: RData,
}

impl Record {
    /// An A or AAAA record (by the address family) of class IN.
    pub fn address(name: Name, addr: IpAddr, ttl: u32) -> Record {
        let (rtype, data) = match addr {
            IpAddr::V4(a) => (Type::A, RData::A(a)),
            IpAddr::V6(a) => (Type::AAAA, RData::Aaaa(a)),
        };
        Record {
            name,
            rtype,
            class: Class::IN,
            ttl,
            data,
        }
    }

    /// Reads the record at `start` (OPT included, as raw data); returns it and the offset
    /// after it.
    pub fn parse(msg: &[u8], start: usize) -> Result<(Record, usize)> {
        let (name, off) = Name::parse(msg, start)?;
        let rtype = Type(be16(msg, off)?);
        let class = Class(be16(msg, off + 2)?);
        let ttl = be32(msg, off + 4)?;
        let rdlen = usize::from(be16(msg, off + 8)?);
        let rdata = slice(msg, off + RR_FIXED_LEN, rdlen)?;
        // Only Internet-class addresses are decoded; other classes reuse type numbers.
        let data = match (rtype, class) {
            (Type::A, Class::IN) => {
                let b: [u8; 4] = rdata
                    .try_into()
                    .map_err(|_| WireError::Malformed("A record length"))?;
                RData::A(Ipv4Addr::from(b))
            }
            (Type::AAAA, Class::IN) => {
                let b: [u8; 16] = rdata
                    .try_into()
                    .map_err(|_| WireError::Malformed("AAAA record length"))?;
                RData::Aaaa(Ipv6Addr::from(b))
            }
            _ => RData::Other(rdata.to_vec()),
        };
        let rec = Record {
            name,
            rtype,
            class,
            ttl,
            data,
        };
        Ok((rec, off + RR_FIXED_LEN + rdlen))
    }

    /// The address of an A/AAAA record.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.data {
            RData::A(a) => Some(IpAddr::V4(a)),
            RData::Aaaa(a) => Some(IpAddr::V6(a)),
            RData::Other(_) => None,
        }
    }

    /// Bytes this record takes in a message whose question is `question` (its owner is
    /// compressed to a pointer when it is the question name).
    fn buffer_len(&self, question: Option<&Question>) -> usize {
        name_len_in(&self.name, question) + RR_FIXED_LEN + self.data.len()
    }

    fn write(&self, w: &mut Writer<'_>, question: Option<&Question>) -> Result<()> {
        write_name(w, &self.name, question)?;
        w.u16(self.rtype.0)?;
        w.u16(self.class.0)?;
        w.u32(self.ttl)?;
        let rdlen = u16::try_from(self.data.len()).map_err(|_| WireError::Limit("rdata"))?;
        w.u16(rdlen)?;
        match &self.data {
            RData::A(a) => w.put(&a.octets()),
            RData::Aaaa(a) => w.put(&a.octets()),
            RData::Other(b) => w.put(b),
        }
    }
}

/// Whether `name` is written as a pointer to the question name at [`QUESTION_OFFSET`]. The
/// root is a single byte: a pointer would be longer.
fn compresses_to_question(name: &Name, question: Option<&Question>) -> bool {
    question.is_some_and(|q| q.name == *name && !name.is_root())
}

fn name_len_in(name: &Name, question: Option<&Question>) -> usize {
    if compresses_to_question(name, question) {
        POINTER_LEN
    } else {
        name.wire_len()
    }
}

fn write_name(w: &mut Writer<'_>, name: &Name, question: Option<&Question>) -> Result<()> {
    if compresses_to_question(name, question) {
        w.u16((u16::from(POINTER_TAG) << 8) | QUESTION_OFFSET as u16)
    } else {
        w.put(name.as_wire())
    }
}

/// The EDNS(0) OPT pseudo-record (RFC 6891 §6.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edns {
    /// Largest UDP payload the sender can receive (the record's CLASS field).
    pub udp_payload_size: u16,
    /// Upper 8 bits of the 12-bit RCODE.
    pub ext_rcode: u8,
    /// EDNS version; only 0 exists.
    pub version: u8,
    /// DNSSEC OK.
    pub dnssec_ok: bool,
    /// The options, raw (we send none).
    pub options: Vec<u8>,
}

impl Edns {
    fn from_record(r: &Record) -> Result<Edns> {
        if !r.name.is_root() {
            return Err(WireError::Malformed("OPT owner name"));
        }
        let options = match &r.data {
            RData::Other(b) => b.clone(),
            // OPT is type 41, never decoded as an address.
            _ => Vec::new(),
        };
        Ok(Edns {
            udp_payload_size: r.class.0,
            ext_rcode: (r.ttl >> 24) as u8,
            version: (r.ttl >> 16) as u8,
            dnssec_ok: r.ttl & EDNS_DO != 0,
            options,
        })
    }

    /// Bytes the OPT record takes.
    pub fn buffer_len(&self) -> usize {
        OPT_LEN + self.options.len()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put(&[0])?;
        w.u16(Type::OPT.0)?;
        w.u16(self.udp_payload_size)?;
        let ttl = (u32::from(self.ext_rcode) << 24)
            | (u32::from(self.version) << 16)
            | if self.dnssec_ok { EDNS_DO } else { 0 };
        w.u32(ttl)?;
        let rdlen = u16::try_from(self.options.len()).map_err(|_| WireError::Limit("rdata"))?;
        w.u16(rdlen)?;
        w.put(&self.options)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A whole message: header, at most [`MAX_QUESTIONS`] question, and at most
/// [`MAX_RECORDS`] records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Id and flags.
    pub header: Header,
    /// The question, if any.
    pub question: Option<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section, without the OPT record.
    pub additional: Vec<Record>,
    /// The OPT record, if any (sent last in the additional section).
    pub edns: Option<Edns>,
}

impl Message {
    /// Parses a whole message. Bytes after the last record are ignored (as most servers do).
    pub fn parse(msg: &[u8]) -> Result<Message> {
        let p = Packet::new_checked(msg)?;
        if usize::from(p.qdcount()) > MAX_QUESTIONS {
            return Err(WireError::Limit("questions"));
        }
        let (an, ns, ar) = (
            usize::from(p.ancount()),
            usize::from(p.nscount()),
            usize::from(p.arcount()),
        );
        if an + ns + ar > MAX_RECORDS {
            return Err(WireError::Limit("records"));
        }
        let mut m = Message {
            header: Header::parse(&p),
            ..Message::default()
        };
        let mut off = HEADER_LEN;
        if p.qdcount() == 1 {
            let (q, next) = Question::parse(msg, off)?;
            m.question = Some(q);
            off = next;
        }
        for (n, section) in [(an, 0), (ns, 1), (ar, 2)] {
            for _ in 0..n {
                let (r, next) = Record::parse(msg, off)?;
                off = next;
                if r.rtype == Type::OPT {
                    // RFC 6891 §6.1.1: only in the additional section, at most once.
                    if section != 2 {
                        return Err(WireError::Malformed("OPT outside additional section"));
                    }
                    if m.edns.is_some() {
                        return Err(WireError::Malformed("second OPT record"));
                    }
                    m.edns = Some(Edns::from_record(&r)?);
                    continue;
                }
                match section {
                    0 => m.answers.push(r),
                    1 => m.authority.push(r),
                    _ => m.additional.push(r),
                }
            }
        }
        Ok(m)
    }

    /// A query for `name`/`qtype` (class IN, RD set).
    pub fn query(id: u16, name: Name, qtype: Type) -> Message {
        Message {
            header: Header {
                id,
                rd: true,
                ..Header::default()
            },
            question: Some(Question {
                name,
                qtype,
                qclass: Class::IN,
            }),
            ..Message::default()
        }
    }

    /// An empty response to `query` with `rcode`: same id, opcode, RD and CD, QR and RA set
    /// (we recurse by forwarding), the question copied byte for byte, and an OPT record if
    /// the query had one (RFC 6891 §6.1.1), advertising [`MAX_EDNS_UDP_LEN`].
    pub fn response_to(query: &Message, rcode: Rcode) -> Message {
        let mut m = Message {
            header: Header {
                id: query.header.id,
                qr: true,
                opcode: query.header.opcode,
                rd: query.header.rd,
                cd: query.header.cd,
                ra: true,
                ..Header::default()
            },
            question: query.question,
            edns: query.edns.as_ref().map(|_| Edns {
                udp_payload_size: MAX_EDNS_UDP_LEN as u16,
                ext_rcode: 0,
                version: 0,
                dnssec_ok: false,
                options: Vec::new(),
            }),
            ..Message::default()
        };
        m.set_rcode(rcode);
        m
    }

    /// A header-only response with `rcode` to a message whose header is readable but whose
    /// body is not (FORMERR): nothing else of it can be trusted.
    pub fn header_only_response<T: AsRef<[u8]>>(query: &Packet<T>, rcode: Rcode) -> Message {
        let mut m = Message {
            header: Header {
                id: query.id(),
                qr: true,
                opcode: query.opcode(),
                rd: query.rd(),
                ra: true,
                ..Header::default()
            },
            ..Message::default()
        };
        m.set_rcode(rcode);
        m
    }

    /// The full response code (header bits extended by the OPT record's).
    pub fn rcode(&self) -> Rcode {
        let ext = self.edns.as_ref().map_or(0, |e| u16::from(e.ext_rcode));
        Rcode((ext << 4) | u16::from(self.header.rcode & RCODE_MASK as u8))
    }

    /// Sets the response code; the upper bits go to the OPT record, so without one an
    /// extended code is sent as SERVFAIL.
    pub fn set_rcode(&mut self, rcode: Rcode) {
        match &mut self.edns {
            Some(e) => {
                e.ext_rcode = rcode.extended_bits();
                self.header.rcode = rcode.header_bits();
            }
            None if rcode.extended_bits() != 0 => {
                self.header.rcode = Rcode::SERVFAIL.header_bits();
            }
            None => self.header.rcode = rcode.header_bits(),
        }
    }

    /// Bytes [`Message::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let q = self.question.as_ref();
        let records = self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
            .map(|r| r.buffer_len(q))
            .sum::<usize>();
        HEADER_LEN
            + q.map_or(0, Question::buffer_len)
            + records
            + self.edns.as_ref().map_or(0, Edns::buffer_len)
    }

    /// Drops answers from the end until the message fits in `max_len`, setting TC if any
    /// were dropped (the client then retries over TCP). The question and OPT always fit:
    /// with a name of at most 255 bytes they take under 300.
    pub fn truncate_to(&mut self, max_len: usize) {
        while self.buffer_len() > max_len && self.answers.pop().is_some() {
            self.header.tc = true;
        }
    }

    /// Writes the message at the start of `buf`; returns its length. Answer, authority and
    /// additional owners equal to the question name are compressed to a pointer to it.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if len > MAX_TCP_LEN {
            return Err(WireError::Limit("message length"));
        }
        if buf.len() < len {
            return Err(WireError::BufferTooSmall {
                need: len,
                have: buf.len(),
            });
        }
        let arcount = self.additional.len() + usize::from(self.edns.is_some());
        let mut w = Writer { buf, pos: 0 };
        w.u16(self.header.id)?;
        w.u16(self.header.flags())?;
        w.u16(u16::from(self.question.is_some()))?;
        w.u16(count16(self.answers.len())?)?;
        w.u16(count16(self.authority.len())?)?;
        w.u16(count16(arcount)?)?;
        let q = self.question.as_ref();
        if let Some(q) = q {
            q.write(&mut w)?;
        }
        for r in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            r.write(&mut w, q)?;
        }
        if let Some(e) = &self.edns {
            e.write(&mut w)?;
        }
        Ok(w.pos)
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0; self.buffer_len()];
        let n = self.emit(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// Reads only the header and the question of `msg`: enough to match an upstream reply to its
/// query without parsing (and limiting) its records.
pub fn parse_question(msg: &[u8]) -> Result<(Header, Option<Question>)> {
    let p = Packet::new_checked(msg)?;
    if usize::from(p.qdcount()) > MAX_QUESTIONS {
        return Err(WireError::Limit("questions"));
    }
    let q = if p.qdcount() == 1 {
        Some(Question::parse(msg, HEADER_LEN)?.0)
    } else {
        None
    };
    Ok((Header::parse(&p), q))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `web2 A?`, id 0x1234, RD.
    const QUERY_WEB2_A: [u8; 22] = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        4, b'w', b'e', b'b', b'2', 0, 0x00, 0x01, 0x00, 0x01,
    ];

    /// Its answer: 172.18.0.3, TTL 600, owner compressed to the question.
    const RESPONSE_WEB2_A: [u8; 38] = [
        0x12, 0x34, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, //
        4, b'w', b'e', b'b', b'2', 0, 0x00, 0x01, 0x00, 0x01, //
        0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x58, 0x00, 0x04, 172, 18, 0, 3,
    ];

    fn name(s: &str) -> Name {
        Name::from_dotted(s).expect("valid name")
    }

    #[test]
    fn header_view() {
        let p = Packet::new_checked(&RESPONSE_WEB2_A[..]).expect("header");
        assert_eq!(p.id(), 0x1234);
        assert!(p.qr() && p.aa() && p.rd() && p.ra() && !p.tc() && !p.ad() && !p.cd());
        assert_eq!(p.opcode(), Opcode::QUERY);
        assert_eq!(p.rcode(), Rcode::NOERROR);
        assert_eq!(
            (p.qdcount(), p.ancount(), p.nscount(), p.arcount()),
            (1, 1, 0, 0)
        );
        assert_eq!(p.body().len(), RESPONSE_WEB2_A.len() - HEADER_LEN);
        assert!(matches!(
            Packet::new_checked(&RESPONSE_WEB2_A[..11]),
            Err(WireError::Truncated { need: 12, have: 11 })
        ));
        let mut b = RESPONSE_WEB2_A;
        let mut p = Packet::new_checked(&mut b[..]).expect("header");
        p.set_id(0xBEEF);
        p.set_flags(0x2800 | 0x5);
        assert_eq!(p.id(), 0xBEEF);
        assert_eq!(p.opcode(), Opcode::UPDATE);
        assert_eq!(p.rcode(), Rcode::REFUSED);
        assert!(!p.qr());
    }

    #[test]
    fn header_flags_roundtrip() {
        for flags in [0u16, 0x8580, 0xFFBF, 0x7801, 0x0130] {
            let mut b = [0u8; HEADER_LEN];
            b[2..4].copy_from_slice(&flags.to_be_bytes());
            let h = Header::parse(&Packet::new_checked(&b[..]).expect("header"));
            // Z (0x0040) is the only bit not kept.
            assert_eq!(h.flags(), flags & !0x0040, "{flags:#06x}");
        }
    }

    #[test]
    fn parse_query_bytes() {
        let m = Message::parse(&QUERY_WEB2_A).expect("query");
        assert_eq!(m.header.id, 0x1234);
        assert!(!m.header.qr && m.header.rd);
        let q = m.question.expect("question");
        assert_eq!(q.name, name("web2"));
        assert_eq!(q.qtype, Type::A);
        assert_eq!(q.qclass, Class::IN);
        assert!(m.answers.is_empty() && m.edns.is_none());
        assert_eq!(q.name.to_string(), "web2.");
        assert_eq!(q.name.lookup_key().as_deref(), Some("web2"));
    }

    #[test]
    fn build_response_matches_hand_made_bytes() {
        let query = Message::parse(&QUERY_WEB2_A).expect("query");
        let mut r = Message::response_to(&query, Rcode::NOERROR);
        r.header.aa = true;
        let q = query.question.expect("question");
        r.answers.push(Record::address(
            q.name,
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3)),
            LOCAL_TTL,
        ));
        let bytes = r.to_bytes().expect("emit");
        assert_eq!(bytes, RESPONSE_WEB2_A);
        assert_eq!(Message::parse(&bytes).expect("parse back"), r);
        // Emitting into a short buffer is an error, not a panic.
        let mut short = [0u8; 20];
        assert!(matches!(
            r.emit(&mut short),
            Err(WireError::BufferTooSmall { need: 38, have: 20 })
        ));
    }

    #[test]
    fn error_responses_bytes() {
        let query = Message::parse(&QUERY_WEB2_A).expect("query");
        let nx = Message::response_to(&query, Rcode::NXDOMAIN)
            .to_bytes()
            .expect("emit");
        let mut expect = QUERY_WEB2_A.to_vec();
        expect[2..4].copy_from_slice(&[0x81, 0x83]); // QR RD RA, NXDOMAIN
        assert_eq!(nx, expect);
        let sf = Message::response_to(&query, Rcode::SERVFAIL)
            .to_bytes()
            .expect("emit");
        expect[2..4].copy_from_slice(&[0x81, 0x82]);
        assert_eq!(sf, expect);
        // FORMERR: header only, counts zero.
        let p = Packet::new_checked(&QUERY_WEB2_A[..]).expect("header");
        let fe = Message::header_only_response(&p, Rcode::FORMERR)
            .to_bytes()
            .expect("emit");
        assert_eq!(fe, [0x12, 0x34, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn aaaa_and_edns_roundtrip() {
        let mut query = Message::query(7, name("Db.Example.COM."), Type::AAAA);
        query.edns = Some(Edns {
            udp_payload_size: 4096,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: true,
            options: vec![0, 10, 0, 2, 0xAB, 0xCD],
        });
        let qb = query.to_bytes().expect("emit");
        assert_eq!(Message::parse(&qb).expect("parse"), query);
        let mut r = Message::response_to(&query, Rcode::BADVERS);
        assert_eq!(r.rcode(), Rcode::BADVERS);
        assert_eq!(r.header.rcode, 0);
        r.set_rcode(Rcode::NOERROR);
        let a6: Ipv6Addr = "fd00::3".parse().expect("addr");
        r.answers
            .push(Record::address(name("Db.Example.COM"), a6.into(), 600));
        let rb = r.to_bytes().expect("emit");
        let back = Message::parse(&rb).expect("parse");
        assert_eq!(back, r);
        assert_eq!(back.answers[0].ip(), Some(IpAddr::V6(a6)));
        assert_eq!(back.edns.as_ref().map(|e| e.udp_payload_size), Some(1232));
        // Without OPT an extended code cannot be expressed: SERVFAIL instead.
        let mut plain =
            Message::response_to(&Message::parse(&QUERY_WEB2_A).expect("q"), Rcode::NOERROR);
        plain.set_rcode(Rcode::BADVERS);
        assert_eq!(plain.rcode(), Rcode::SERVFAIL);
    }

    #[test]
    fn names_case_and_dots() {
        assert!(name("WEB2").eq_ignore_case(&name("web2.")));
        assert!(name("WEB2") != name("web2"));
        assert_eq!(name("WEB2.Net").lookup_key().as_deref(), Some("web2.net"));
        assert!(names_equal("Web2.", "wEb2"));
        assert!(!names_equal("web2", "web"));
        assert_eq!(normalize_name("Web2.MyNet."), "web2.mynet");
        assert!(Name::from_dotted(".").expect("root").is_root());
        assert_eq!(Name::root().to_string(), ".");
        assert_eq!(Name::root().lookup_key().as_deref(), Some(""));
        assert!(Name::from_dotted("a..b").is_err());
        assert!(Name::from_dotted(&"a".repeat(64)).is_err());
        let long = vec!["abc"; 64].join(".");
        assert!(Name::from_dotted(&long).is_err()); // 256 bytes
        let ok = vec!["abc"; 63].join(".");
        assert_eq!(Name::from_dotted(&ok).expect("253 bytes").wire_len(), 253);
        let abc = name("a.bc");
        let labels: Vec<&[u8]> = abc.labels().collect();
        assert_eq!(labels, [&b"a"[..], &b"bc"[..]]);
    }

    #[test]
    fn odd_bytes_are_not_lookup_keys() {
        // One label "a.b" (a dot inside a label) and one with a space.
        let msg = [3, b'a', b'.', b'b', 0];
        let (n, end) = Name::parse(&msg, 0).expect("name");
        assert_eq!(end, 5);
        assert_eq!(n.lookup_key(), None);
        assert_eq!(n.to_string(), "a\\.b.");
        let (n, _) = Name::parse(&[2, b'a', b' ', 0], 0).expect("name");
        assert_eq!(n.lookup_key(), None);
        assert_eq!(n.to_string(), "a\\032.");
    }

    #[test]
    fn decompression() {
        // "example.com" at 0, then "www" + pointer to 0, then a bare pointer to 13.
        let msg = [
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, //
            3, b'w', b'w', b'w', 0xC0, 0x00, //
            0xC0, 13,
        ];
        let (n, end) = Name::parse(&msg, 13).expect("name");
        assert_eq!(n.to_string(), "www.example.com.");
        assert_eq!(end, 19);
        let (n, end) = Name::parse(&msg, 19).expect("name");
        assert_eq!(n.to_string(), "www.example.com.");
        assert_eq!(end, 21);
    }

    #[test]
    fn compression_loops_rejected() {
        // A pointer to itself.
        assert!(matches!(
            Name::parse(&[0xC0, 0x00], 0),
            Err(WireError::Malformed(_))
        ));
        // A label followed by a pointer back to that label: a loop through a backward jump.
        assert!(matches!(
            Name::parse(&[1, b'a', 0xC0, 0x00], 0),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Name::parse(&[0, 1, b'a', 0xC0, 0x01], 3),
            Err(WireError::Malformed(_))
        ));
        // Two pointers pointing at each other.
        assert!(Name::parse(&[0xC0, 0x02, 0xC0, 0x00], 2).is_err());
        // A forward pointer.
        assert!(Name::parse(&[0xC0, 0x02, 0], 0).is_err());
        // A chain longer than MAX_POINTER_HOPS: each pointer to the previous one.
        let mut chain = vec![0u8];
        for i in 0..=MAX_POINTER_HOPS {
            let prev = if i == 0 { 0 } else { 1 + 2 * (i - 1) };
            chain.extend_from_slice(&[0xC0, prev as u8]);
        }
        let last = chain.len() - 2;
        assert!(matches!(
            Name::parse(&chain, last),
            Err(WireError::Limit("compression pointer hops"))
        ));
        // One hop fewer is fine.
        assert!(Name::parse(&chain, last - 2).is_ok());
    }

    #[test]
    fn bad_names_rejected() {
        // Reserved label types 01 and 10.
        assert!(Name::parse(&[0x40, 0], 0).is_err());
        assert!(Name::parse(&[0x80, 0], 0).is_err());
        // Truncated label, missing root, truncated pointer.
        assert!(matches!(
            Name::parse(&[5, b'a', b'b'], 0),
            Err(WireError::Truncated { .. })
        ));
        assert!(Name::parse(&[1, b'a'], 0).is_err());
        assert!(Name::parse(&[0xC0], 0).is_err());
        assert!(Name::parse(&[], 0).is_err());
        // 256 bytes through pointers: four 63-byte labels (4 * 64 = 256 > 255 with root).
        let mut msg = Vec::new();
        for _ in 0..4 {
            msg.push(63);
            msg.extend_from_slice(&[b'x'; 63]);
        }
        msg.push(0);
        assert!(matches!(
            Name::parse(&msg, 0),
            Err(WireError::Limit("name length"))
        ));
    }

    #[test]
    fn message_limits() {
        let mut two_q = QUERY_WEB2_A;
        two_q[5] = 2;
        assert_eq!(Message::parse(&two_q), Err(WireError::Limit("questions")));
        let mut many = QUERY_WEB2_A;
        many[6] = 0xFF; // ancount 65280
        assert_eq!(Message::parse(&many), Err(WireError::Limit("records")));
        let mut trunc = QUERY_WEB2_A;
        trunc[7] = 1; // an answer that is not there
        assert!(matches!(
            Message::parse(&trunc),
            Err(WireError::Truncated { .. })
        ));
        // A second OPT is malformed.
        let mut q = Message::query(1, name("a"), Type::A);
        q.edns = Some(Edns {
            udp_payload_size: 512,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
            options: vec![],
        });
        let mut b = q.to_bytes().expect("emit");
        b.extend_from_slice(&[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]);
        b[11] = 2;
        assert_eq!(
            Message::parse(&b),
            Err(WireError::Malformed("second OPT record"))
        );
        // An A record with 3 bytes of data.
        let mut r = RESPONSE_WEB2_A.to_vec();
        r[33] = 3;
        r.pop();
        assert_eq!(
            Message::parse(&r),
            Err(WireError::Malformed("A record length"))
        );
    }

    #[test]
    fn truncation_sets_tc() {
        let query = Message::parse(&QUERY_WEB2_A).expect("query");
        let mut r = Message::response_to(&query, Rcode::NOERROR);
        let n = query.question.expect("q").name;
        for i in 0..MAX_ANSWERS {
            r.answers.push(Record::address(
                n,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8)),
                LOCAL_TTL,
            ));
        }
        // 22 + 32 * 16 = 534 bytes.
        assert_eq!(r.buffer_len(), 534);
        r.truncate_to(MAX_UDP_LEN);
        assert!(r.header.tc);
        assert_eq!(r.answers.len(), 30);
        assert!(r.buffer_len() <= MAX_UDP_LEN);
        let back = Message::parse(&r.to_bytes().expect("emit")).expect("parse");
        assert!(back.header.tc);
    }

    #[test]
    fn parse_question_only() {
        let (h, q) = parse_question(&RESPONSE_WEB2_A).expect("parse");
        assert!(h.qr);
        assert!(q.expect("q").matches(&Question {
            name: name("WEB2"),
            qtype: Type::A,
            qclass: Class::IN
        }));
        // Records are not looked at: garbage after the question is fine.
        let mut b = QUERY_WEB2_A.to_vec();
        b[7] = 200;
        b.extend_from_slice(&[0xFF; 5]);
        assert!(parse_question(&b).is_ok());
    }
}
