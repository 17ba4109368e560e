//! Go `time.Time` as the docker CLI and moby see it (the one RFC 3339 parser of the crate): parsed from the daemon's RFC 3339 `Created`
//! with Go's own error messages, printed with `String()` (`2025-06-01 10:00:00.123456789
//! +0000 UTC`) or marshalled back to RFC 3339 with nanoseconds.

use std::fmt::Write as _;

/// Seconds between 0001-01-01 and the Unix epoch (Go's `unixToInternal`).
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// An instant plus the zone it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoTime {
    /// Seconds since the Unix epoch (UTC).
    pub unix: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// `None`: UTC (also used for a `+00:00` offset, which Go maps to the local zone,
    /// assumed to be UTC). `Some(s)`: a fixed zone `s` seconds east of UTC, unnamed.
    pub offset: Option<i32>,
}

impl Default for GoTime {
    fn default() -> Self {
        GoTime::ZERO
    }
}

impl GoTime {
    /// Go's zero `time.Time` (`0001-01-01 00:00:00 +0000 UTC`).
    pub const ZERO: GoTime = GoTime {
        unix: -UNIX_TO_INTERNAL,
        nanos: 0,
        offset: None,
    };

    pub fn is_zero(&self) -> bool {
        self.unix == -UNIX_TO_INTERNAL && self.nanos == 0
    }

    /// Parses like Go's `time.Parse(time.RFC3339, s)` (the path `Time.UnmarshalJSON`
    /// falls back to), including its error text, e.g. `parsing time "" as
    /// "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006"`.
    pub fn parse_rfc3339(value: &str) -> Result<GoTime, String> {
        let bad = |layout_elem: &str, value_elem: &str| {
            format!(
                "parsing time {} as {}: cannot parse {} as {}",
                go_quote(value),
                go_quote(RFC3339),
                go_quote(value_elem),
                go_quote(layout_elem)
            )
        };
        let range = |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
        let mut v = value;

        let b = v.as_bytes();
        if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
            return Err(bad("2006", v));
        }
        let year: i64 = v[..4].parse().map_err(|_| bad("2006", v))?;
        v = &v[4..];

        v = skip(v, '-').map_err(|rest| bad("-", rest))?;
        let hold = v;
        let (month, rest) = getnum(v, true).ok_or_else(|| bad("01", hold))?;
        if !(1..=12).contains(&month) {
            return Err(range("month"));
        }
        v = rest;

        v = skip(v, '-').map_err(|rest| bad("-", rest))?;
        let hold = v;
        let (day, rest) = getnum(v, true).ok_or_else(|| bad("02", hold))?;
        v = rest;

        v = skip(v, 'T').map_err(|rest| bad("T", rest))?;
        let hold = v;
        let (hour, rest) = getnum(v, false).ok_or_else(|| bad("15", hold))?;
        if hour >= 24 {
            return Err(range("hour"));
        }
        v = rest;

        v = skip(v, ':').map_err(|rest| bad(":", rest))?;
        let hold = v;
        let (min, rest) = getnum(v, true).ok_or_else(|| bad("04", hold))?;
        if min >= 60 {
            return Err(range("minute"));
        }
        v = rest;

        v = skip(v, ':').map_err(|rest| bad(":", rest))?;
        let hold = v;
        let (sec, rest) = getnum(v, true).ok_or_else(|| bad("05", hold))?;
        if sec >= 60 {
            return Err(range("second"));
        }
        v = rest;
        let mut nanos = 0u32;
        let vb = v.as_bytes();
        if vb.len() >= 2 && (vb[0] == b'.' || vb[0] == b',') && vb[1].is_ascii_digit() {
            let mut n = 2;
            while n < vb.len() && vb[n].is_ascii_digit() {
                n += 1;
            }
            let digits = &v[1..n.min(10)];
            let mut ns: u32 = digits.parse().unwrap_or(0);
            for _ in digits.len()..9 {
                ns *= 10;
            }
            nanos = ns;
            v = &v[n..];
        }

        let hold = v;
        let offset = if let Some(rest) = v.strip_prefix('Z') {
            v = rest;
            None
        } else {
            let vb = v.as_bytes();
            if vb.len() < 6 || vb[3] != b':' {
                return Err(bad("Z07:00", hold));
            }
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let hr = two(vb[1], vb[2]).ok_or_else(|| bad("Z07:00", hold))?;
            let mm = two(vb[4], vb[5]).ok_or_else(|| bad("Z07:00", hold))?;
            if hr > 24 {
                return Err(range("time zone offset hour"));
            }
            if mm > 60 {
                return Err(range("time zone offset minute"));
            }
            let mut off = ((hr * 60 + mm) * 60) as i32;
            match vb[0] {
                b'+' => {}
                b'-' => off = -off,
                _ => return Err(bad("Z07:00", hold)),
            }
            v = &v[6..];
            if off == 0 {
                None
            } else {
                Some(off)
            }
        };
        if !v.is_empty() {
            return Err(format!(
                "parsing time {}: extra text: {}",
                go_quote(value),
                go_quote(v)
            ));
        }
        if day < 1 || day > days_in(month, year) {
            return Err(range("day"));
        }
        let days = days_from_civil(year, month, day);
        let local = days * 86_400 + hour * 3600 + min * 60 + sec;
        Ok(GoTime {
            unix: local - i64::from(offset.unwrap_or(0)),
            nanos,
            offset,
        })
    }

    fn local_parts(&self) -> (i64, i64, i64, i64, i64, i64) {
        let local = self.unix + i64::from(self.offset.unwrap_or(0));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    fn frac(&self) -> String {
        if self.nanos == 0 {
            return String::new();
        }
        let s = format!(".{:09}", self.nanos);
        s.trim_end_matches('0').to_string()
    }

    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    pub fn go_string(&self) -> String {
        let (y, mo, d, h, mi, s) = self.local_parts();
        let mut out = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}",
            y,
            mo,
            d,
            h,
            mi,
            s,
            self.frac()
        );
        let off = self.offset.unwrap_or(0);
        let num = numeric_zone(off, false);
        let _ = write!(out, " {num} ");
        match self.offset {
            None => out.push_str("UTC"),
            Some(_) => out.push_str(&num),
        }
        out
    }

    /// Go's `Time.MarshalJSON` body: RFC 3339 with trimmed nanoseconds.
    pub fn rfc3339_nano(&self) -> String {
        let (y, mo, d, h, mi, s) = self.local_parts();
        let zone = match self.offset {
            None | Some(0) => "Z".to_string(),
            Some(off) => numeric_zone(off, true),
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}",
            y,
            mo,
            d,
            h,
            mi,
            s,
            self.frac(),
            zone
        )
    }

    /// How `fmt` prints a `time.Time` it cannot call `String()` on (an unexported
    /// field): the raw struct `{wall ext loc}`.
    pub fn internal_repr(&self) -> String {
        let loc = if self.offset.is_none() {
            "<nil>"
        } else {
            "0xc000010000"
        };
        format!(
            "{{{} {} {}}}",
            self.nanos,
            self.unix + UNIX_TO_INTERNAL,
            loc
        )
    }
}

impl GoTime {
    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.unix
    }

    /// (year, month 1-12, day, hour, minute, second) in the time's zone.
    pub fn parts(&self) -> (i64, i64, i64, i64, i64, i64) {
        self.local_parts()
    }

    /// 0 = Sunday.
    pub fn weekday(&self) -> usize {
        let local = self.unix + i64::from(self.offset.unwrap_or(0));
        (local.div_euclid(86_400) + 4).rem_euclid(7) as usize
    }

    /// Day of the year, 1-366.
    pub fn year_day(&self) -> i64 {
        let (y, m, d, ..) = self.local_parts();
        days_from_civil(y, m, d) - days_from_civil(y, 1, 1) + 1
    }

    /// The same instant in UTC.
    pub fn utc(&self) -> GoTime {
        GoTime {
            offset: None,
            ..*self
        }
    }

    /// Go's `Time.Format(layout)` for the usual layout elements (`2006 01 02 15 04 05`,
    /// `Jan January Mon Monday`, `3 03 PM pm`, `_2 002`, `.000` / `.999…`, `MST`,
    /// `-0700 -07:00 -07 Z0700 Z07:00 Z07`).
    pub fn format(&self, layout: &str) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        const DAYS: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        let (y, mo, d, h, mi, sec) = self.local_parts();
        let off = self.offset.unwrap_or(0);
        let zone = |colon: bool, z: bool, short: bool| -> String {
            if z && off == 0 {
                return "Z".into();
            }
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            if short {
                format!("{sign}{:02}", a / 3600)
            } else if colon {
                format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
            } else {
                format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
            }
        };
        let lower_next = |rest: &str| rest.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let mut out = String::new();
        let mut i = 0;
        let b = layout.as_bytes();
        while i < b.len() {
            let r = &layout[i..];
            let (text, n): (String, usize) = if r.starts_with("January") {
                (MONTHS[(mo - 1) as usize].into(), 7)
            } else if r.starts_with("Jan") && !lower_next(&r[3..]) {
                (MONTHS[(mo - 1) as usize][..3].into(), 3)
            } else if r.starts_with("Monday") {
                (DAYS[self.weekday()].into(), 6)
            } else if r.starts_with("Mon") && !lower_next(&r[3..]) {
                (DAYS[self.weekday()][..3].into(), 3)
            } else if r.starts_with("MST") {
                let name = match self.offset {
                    None => "UTC".to_string(),
                    Some(_) => zone(false, false, false),
                };
                (name, 3)
            } else if r.starts_with("2006") {
                (format!("{y:04}"), 4)
            } else if r.starts_with("002") {
                (format!("{:03}", self.year_day()), 3)
            } else if r.starts_with("01") {
                (format!("{mo:02}"), 2)
            } else if r.starts_with("02") {
                (format!("{d:02}"), 2)
            } else if r.starts_with("03") {
                (format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 }), 2)
            } else if r.starts_with("04") {
                (format!("{mi:02}"), 2)
            } else if r.starts_with("05") {
                (format!("{sec:02}"), 2)
            } else if r.starts_with("06") {
                (format!("{:02}", y.rem_euclid(100)), 2)
            } else if r.starts_with("_2") && !r.starts_with("_2006") {
                (format!("{d:>2}"), 2)
            } else if r.starts_with("15") {
                (format!("{h}"), 2)
            } else if r.starts_with('1') {
                (format!("{mo}"), 1)
            } else if r.starts_with('2') {
                (format!("{d}"), 1)
            } else if r.starts_with('3') {
                (format!("{}", if h % 12 == 0 { 12 } else { h % 12 }), 1)
            } else if r.starts_with('4') {
                (format!("{mi}"), 1)
            } else if r.starts_with('5') {
                (format!("{sec}"), 1)
            } else if r.starts_with("PM") {
                ((if h >= 12 { "PM" } else { "AM" }).into(), 2)
            } else if r.starts_with("pm") {
                ((if h >= 12 { "pm" } else { "am" }).into(), 2)
            } else if r.starts_with("Z07:00") {
                (zone(true, true, false), 6)
            } else if r.starts_with("Z0700") {
                (zone(false, true, false), 5)
            } else if r.starts_with("Z07") {
                (zone(false, true, true), 3)
            } else if r.starts_with("-07:00") {
                (zone(true, false, false), 6)
            } else if r.starts_with("-0700") {
                (zone(false, false, false), 5)
            } else if r.starts_with("-07") {
                (zone(false, false, true), 3)
            } else if (r.starts_with('.') || r.starts_with(','))
                && r.len() > 1
                && (r.as_bytes()[1] == b'0' || r.as_bytes()[1] == b'9')
            {
                let c = r.as_bytes()[1];
                let mut j = 1;
                while j < r.len() && r.as_bytes()[j] == c {
                    j += 1;
                }
                if j < r.len() && r.as_bytes()[j].is_ascii_digit() {
                    (r[..1].to_string(), 1)
                } else {
                    let digits = (j - 1).min(9);
                    let full = format!("{:09}", self.nanos);
                    let mut f = full[..digits].to_string();
                    if c == b'9' {
                        f = f.trim_end_matches('0').to_string();
                        if f.is_empty() {
                            (String::new(), j)
                        } else {
                            (format!("{}{f}", &r[..1]), j)
                        }
                    } else {
                        (format!("{}{f}", &r[..1]), j)
                    }
                }
            } else {
                let c = r.chars().next().unwrap_or(' ');
                (c.to_string(), c.len_utf8())
            };
            out.push_str(&text);
            i += n;
        }
        out
    }
}

fn numeric_zone(off: i32, colon: bool) -> String {
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
    }
}

fn skip(v: &str, c: char) -> Result<&str, &str> {
    v.strip_prefix(c).ok_or(v)
}

/// Go's `getnum`: one or two leading digits (exactly two when `fixed`).
fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() < 2 || !b[1].is_ascii_digit() {
        if fixed {
            return None;
        }
        return Some((i64::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
        &s[2..],
    ))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(m: i64, y: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The `time` package's `quote`: a double-quoted string with `"` and `\` escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms() {
        let t = GoTime::parse_rfc3339("2025-06-01T10:00:00.123456789Z").unwrap();
        assert_eq!(t.go_string(), "2025-06-01 10:00:00.123456789 +0000 UTC");
        assert_eq!(t.rfc3339_nano(), "2025-06-01T10:00:00.123456789Z");
        assert_eq!(t.internal_repr(), "{123456789 63884368800 <nil>}");
        let t = GoTime::parse_rfc3339("2025-06-01T10:00:00.2Z").unwrap();
        assert_eq!(t.go_string(), "2025-06-01 10:00:00.2 +0000 UTC");
        let t = GoTime::parse_rfc3339("2025-06-02T09:14:03+02:00").unwrap();
        assert_eq!(t.go_string(), "2025-06-02 09:14:03 +0200 +0200");
        assert_eq!(t.rfc3339_nano(), "2025-06-02T09:14:03+02:00");
        assert_eq!(t.internal_repr(), "{0 63884445243 0xc000010000}");
        assert_eq!(GoTime::ZERO.go_string(), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(GoTime::ZERO.rfc3339_nano(), "0001-01-01T00:00:00Z");
        let t = GoTime::parse_rfc3339("0001-01-01T00:00:00Z").unwrap();
        assert!(t.is_zero());
        let t = GoTime::parse_rfc3339("2024-02-29T23:59:59.5-07:30").unwrap();
        assert_eq!(t.go_string(), "2024-02-29 23:59:59.5 -0730 -0730");
    }

    #[test]
    fn format_layouts() {
        let t = GoTime::parse_rfc3339("2025-06-01T10:04:05.123456789Z").unwrap();
        assert_eq!(t.format("2006-01-02 15:04:05"), "2025-06-01 10:04:05");
        assert_eq!(
            t.format("Mon Jan _2 3:04PM .000 .999999 MST Z07:00"),
            "Sun Jun  1 10:04AM .123 .123456 UTC Z"
        );
        assert_eq!(t.format(time_rfc1123()), "Sun, 01 Jun 2025 10:04:05 UTC");
        assert_eq!(t.weekday(), 0);
        assert_eq!(t.year_day(), 152);
    }

    fn time_rfc1123() -> &'static str {
        "Mon, 02 Jan 2006 15:04:05 MST"
    }

    #[test]
    fn parse_errors_match_go() {
        assert_eq!(
            GoTime::parse_rfc3339("").unwrap_err(),
            r#"parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006""#
        );
        assert_eq!(
            GoTime::parse_rfc3339("2025-06-01 10:00:00").unwrap_err(),
            r#"parsing time "2025-06-01 10:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse " 10:00:00" as "T""#
        );
        assert_eq!(
            GoTime::parse_rfc3339("2025-06-01T10:00:00").unwrap_err(),
            r#"parsing time "2025-06-01T10:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00""#
        );
        assert_eq!(
            GoTime::parse_rfc3339("2025-13-01T10:00:00Z").unwrap_err(),
            r#"parsing time "2025-13-01T10:00:00Z": month out of range"#
        );
        assert_eq!(
            GoTime::parse_rfc3339("2025-02-30T10:00:00Z").unwrap_err(),
            r#"parsing time "2025-02-30T10:00:00Z": day out of range"#
        );
        assert_eq!(
            GoTime::parse_rfc3339("2025-02-03T10:00:00Zx").unwrap_err(),
            r#"parsing time "2025-02-03T10:00:00Zx": extra text: "x""#
        );
    }
}
