//! TCP headers (RFC 9293): ports, sequence numbers, flags and checksum. Options are skipped.

use super::checksum::{self, PseudoHeader};
use super::ipv4::IpProtocol;
use super::{check_len, read_u16, read_u32, write_u16, write_u32, Error, Result};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Longest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// FIN flag.
pub const FLAG_FIN: u8 = 0x01;
/// SYN flag.
pub const FLAG_SYN: u8 = 0x02;
/// RST flag.
pub const FLAG_RST: u8 = 0x04;
/// PSH flag.
pub const FLAG_PSH: u8 = 0x08;
/// ACK flag.
pub const FLAG_ACK: u8 = 0x10;
/// URG flag.
pub const FLAG_URG: u8 = 0x20;
/// ECE flag.
pub const FLAG_ECE: u8 = 0x40;
/// CWR flag.
pub const FLAG_CWR: u8 = 0x80;

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ: usize = 4;
const ACK: usize = 8;
const DATA_OFF: usize = 12;
const FLAGS: usize = 13;
const WINDOW: usize = 14;
const CHECKSUM: usize = 16;
const URGENT: usize = 18;

/// A zero-copy view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checks; for rewriting headers whose length fields are about to
    /// be fixed (GSO segmentation). Accessors index fixed offsets, so the caller guarantees
    /// the buffer holds the fixed header.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` (the IP payload) after checking that the header, options included, fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, MIN_HEADER_LEN)?;
        let hl = usize::from(b[DATA_OFF] >> 4) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed("tcp data offset"));
        }
        check_len(b, hl)?;
        Ok(TcpPacket { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), DST_PORT)
    }
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), SEQ)
    }
    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), ACK)
    }
    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[DATA_OFF] >> 4) * 4
    }
    /// The eight flag bits (`FLAG_*`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }
    /// Window.
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), URGENT)
    }
    /// Options.
    pub fn options(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[MIN_HEADER_LEN..self.header_len().clamp(MIN_HEADER_LEN, b.len())]
    }
    /// Payload (to the end of the buffer, which should be the IP payload).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len().min(b.len())..]
    }
    /// `true` when the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        let b = self.buffer.as_ref();
        let acc = ph.sum(IpProtocol::TCP, b.len() as u32);
        checksum::verify(checksum::accumulate(acc, b))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), DST_PORT, v);
    }
    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), SEQ, v);
    }
    /// Sets the acknowledgement number.
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), ACK, v);
    }
    /// Sets the eight flag bits.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[FLAGS] = v;
    }
    /// Sets the window.
    pub fn set_window(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), WINDOW, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM, v);
    }
    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let acc = checksum::accumulate(ph.sum(IpProtocol::TCP, b.len() as u32), b);
        self.set_checksum(!checksum::fold(acc));
    }
}

/// Writes a bare 20-byte header (no options) at the start of `buf`; the checksum is left 0.
#[allow(clippy::too_many_arguments)]
pub fn emit_header(
    buf: &mut [u8],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
) -> Result<usize> {
    super::check_out(buf, MIN_HEADER_LEN)?;
    write_u16(buf, SRC_PORT, src_port);
    write_u16(buf, DST_PORT, dst_port);
    write_u32(buf, SEQ, seq);
    write_u32(buf, ACK, ack);
    buf[DATA_OFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
    buf[FLAGS] = flags;
    write_u16(buf, WINDOW, window);
    write_u16(buf, CHECKSUM, 0);
    write_u16(buf, URGENT, 0);
    Ok(MIN_HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_checksum_v6() {
        let mut b = [0u8; 24];
        emit_header(&mut b, 40000, 80, 1000, 7, FLAG_ACK | FLAG_PSH, 512).expect("fits");
        b[20..].copy_from_slice(b"GET ");
        let ph = PseudoHeader::V6 {
            src: "fd00::2".parse().expect("addr"),
            dst: "fd00::3".parse().expect("addr"),
        };
        let mut t = TcpPacket::new_checked(&mut b[..]).expect("valid");
        t.fill_checksum(&ph);
        assert!(t.verify_checksum(&ph));
        assert_eq!(t.payload(), b"GET ");
        assert_eq!(t.flags(), FLAG_ACK | FLAG_PSH);
        assert_eq!((t.seq_number(), t.ack_number(), t.window()), (1000, 7, 512));
        t.set_seq_number(1001);
        assert!(!t.verify_checksum(&ph));
    }

    #[test]
    fn bad_offsets() {
        let mut b = [0u8; 20];
        assert!(TcpPacket::new_checked(&b[..]).is_err()); // data offset 0
        b[DATA_OFF] = 0x60; // 24-byte header in 20 bytes
        assert!(TcpPacket::new_checked(&b[..]).is_err());
        b[DATA_OFF] = 0x50;
        assert!(TcpPacket::new_checked(&b[..19]).is_err());
    }
}
