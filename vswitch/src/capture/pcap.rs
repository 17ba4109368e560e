//! The classic pcap file format (what `tcpdump -w` writes): a 24-byte global header, then a
//! 16-byte record header before each frame. Little-endian, microsecond timestamps,
//! link type Ethernet.

use std::time::Duration;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Magic of a microsecond-resolution file, as written in the host's (little-endian) order.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Size of the global header.
pub const HEADER_LEN: usize = 24;
/// Size of each record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// The global header for frames cut at `snaplen`.
pub fn file_header(snaplen: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Appends one record (header and the captured bytes) to `out`.
pub fn write_record(out: &mut Vec<u8>, ts: Duration, orig_len: u32, data: &[u8]) {
    let incl = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&ts.subsec_micros().to_le_bytes());
    out.extend_from_slice(&incl.to_le_bytes());
    out.extend_from_slice(&orig_len.max(incl).to_le_bytes());
    out.extend_from_slice(&data[..incl as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let h = file_header(65535);
        assert_eq!(&h[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 2);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 4);
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 65535);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
        let mut out = Vec::new();
        write_record(
            &mut out,
            Duration::new(1_700_000_000, 123_456_789),
            100,
            &[7; 60],
        );
        assert_eq!(out.len(), RECORD_HEADER_LEN + 60);
        assert_eq!(
            u32::from_le_bytes(out[0..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 60);
        assert_eq!(u32::from_le_bytes(out[12..16].try_into().unwrap()), 100);
    }
}
