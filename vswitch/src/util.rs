//! Small helpers shared by the daemon: identifiers and timestamps in Docker's formats.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a Docker object id in hex characters.
pub const ID_HEX_LEN: usize = 64;
/// Length of the short id shown by `ls` and in error messages.
pub const SHORT_ID_LEN: usize = 12;

/// A new random 64-hex id, read from the kernel's CSPRNG like Docker's `stringid`.
pub fn new_id() -> String {
    let mut buf = [0u8; ID_HEX_LEN / 2];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // No /dev/urandom: fall back to time and pid, still unique per daemon.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = t ^ ((std::process::id() as u128) << 64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed.rotate_left(i as u32 * 7) & 0xff) as u8 ^ i as u8;
        }
    }
    hex(&buf)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub fn short_id(id: &str) -> &str {
    id.get(..SHORT_ID_LEN).unwrap_or(id)
}

pub fn is_full_id(s: &str) -> bool {
    s.len() == ID_HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The current time as Go's `time.Time` JSON: RFC 3339, UTC, nanoseconds with trailing zeros
/// trimmed (the docker CLI parses this and rejects other shapes).
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{:09}", nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Seconds since the epoch of an RFC 3339 time (any UTC offset), as Go's `time.Parse`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    crate::gotime::GoTime::parse_rfc3339(s)
        .ok()
        .map(|t| t.unix())
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Write a file atomically and durably: temp file, fsync, rename, fsync of the directory —
/// after a crash the file is either the old or the new content (the host id must survive).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Largest Go duration: `time.Duration` is an int64 of nanoseconds.
const MAX_DURATION_NS: u64 = 1 << 63;

/// Go's `time.ParseDuration` (`-1h30m`, `1.5s`, `300ms`, `2us`, `2µs`, `10ns`, `0`), in
/// nanoseconds; `None` where Go returns an error (no unit, unknown unit, overflow).
pub fn parse_go_duration_ns(s: &str) -> Option<i64> {
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for c in s[..int_len].bytes() {
            // Go: an integer part that overflows is an error.
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            if v > MAX_DURATION_NS {
                return None;
            }
        }
        s = &s[int_len..];
        let (mut frac, mut scale) = (0u64, 1f64);
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            // Go's leadingFraction: digits past what fits are ignored.
            for c in rest[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|y| y.checked_add(u64::from(c - b'0')))
                    .filter(|y| *y <= MAX_DURATION_NS)
                {
                    Some(y) => {
                        frac = y;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit_ns: u64 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        if v > MAX_DURATION_NS / unit_ns {
            return None;
        }
        v *= unit_ns;
        if frac > 0 {
            v = v.checked_add((frac as f64 * (unit_ns as f64 / scale)) as u64)?;
            if v > MAX_DURATION_NS {
                return None;
            }
        }
        total = total.checked_add(v).filter(|t| *t <= MAX_DURATION_NS)?;
    }
    if neg {
        return Some((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).ok()
}

/// A Go duration in whole seconds (truncated toward zero), for filters like `until=24h`.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    parse_go_duration_ns(s).map(|ns| ns / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_go() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_748_772_000, 123_456_789),
            "2025-06-01T10:00:00.123456789Z"
        );
        assert_eq!(
            rfc3339(1_748_772_000, 200_000_000),
            "2025-06-01T10:00:00.2Z"
        );
        assert_eq!(parse_rfc3339("2025-06-01T10:00:00.2Z"), Some(1_748_772_000));
        // UTC offsets count (the old parser ignored them).
        assert_eq!(
            parse_rfc3339("2025-06-01T12:00:00+02:00"),
            Some(1_748_772_000)
        );
        assert_eq!(
            parse_rfc3339("2025-06-01T05:30:00-04:30"),
            Some(1_748_772_000)
        );
        assert_eq!(parse_rfc3339("2025-06-01T10:00:00"), None);
        assert_eq!(parse_rfc3339("2025-02-30T10:00:00Z"), None);
        assert_eq!(parse_rfc3339("2025-06-01T10:00:00Zjunk"), None);
    }

    #[test]
    fn ids_are_64_hex() {
        let a = new_id();
        assert!(is_full_id(&a));
        assert_ne!(a, new_id());
        assert_eq!(short_id(&a).len(), 12);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h"), Some(86_400));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("-1h"), Some(-3600));
        assert_eq!(parse_go_duration("+90s"), Some(90));
        assert_eq!(parse_go_duration("1.5m"), Some(90));
    }

    #[test]
    fn go_durations_in_nanoseconds_as_go() {
        let ns = parse_go_duration_ns;
        assert_eq!(ns("0"), Some(0));
        assert_eq!(ns("-0"), Some(0));
        assert_eq!(ns("10ns"), Some(10));
        assert_eq!(ns("2us"), Some(2_000));
        assert_eq!(ns("2\u{b5}s"), Some(2_000));
        assert_eq!(ns("2\u{3bc}s"), Some(2_000));
        assert_eq!(ns("300ms"), Some(300_000_000));
        assert_eq!(ns("1h2m3.5s"), Some(3_723_500_000_000));
        assert_eq!(ns(".5s"), Some(500_000_000));
        assert_eq!(ns("1.s"), Some(1_000_000_000));
        assert_eq!(ns("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(ns("1.0000000000000000000001s"), Some(1_000_000_000));
        assert_eq!(ns("2562047h47m16.854775807s"), Some(i64::MAX));
        assert_eq!(ns("-2562047h47m16.854775808s"), Some(i64::MIN));
        for bad in [
            "",
            "-",
            "+",
            ".",
            "1",
            "s",
            "1x",
            "1.2.3s",
            "9223372036854775808ns",
            "2562048h",
            "3000000h",
            "1h-1m",
            "0x",
        ] {
            assert_eq!(ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn write_atomic_replaces_whole_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("vsw-util-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("host-id");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert!(!p.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
