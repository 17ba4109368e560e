//! Option value parsing with the docker CLI's (pflag / docker `opts`) semantics, and the
//! URL / filter encodings its API client uses.

use std::collections::{BTreeMap, BTreeSet};

use super::gojson;

/// Go's `strconv.ParseBool` (pflag bool flags accept `--flag=false`).
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` (pflag `int` flags): decimal, `0x` / `0o` / `0b` /
/// leading-`0` octal, optional sign, `_` separators after a base prefix.
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let bad = || format!("strconv.ParseInt: parsing {s:?}: invalid syntax");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.replace('_', ""))
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.replace('_', ""))
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.replace('_', ""))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].replace('_', ""))
    } else {
        (10, lower.clone())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    let v = i128::from_str_radix(&digits, radix).map_err(|_| bad())?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// The values of one occurrence of a pflag `StringSlice` flag: the argument read as one
/// CSV record (`--subnet a,b` is two subnets; `"a,b"` in quotes is one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvList(pub Vec<String>);

/// Parses a `StringSlice` argument like pflag's `readAsCSV` (Go `encoding/csv`, one record).
pub fn parse_csv(s: &str) -> Result<CsvList, String> {
    if s.is_empty() {
        return Ok(CsvList(Vec::new()));
    }
    let b: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let col = |i: usize| i + 1;
    loop {
        let mut field = String::new();
        if i < b.len() && b[i] == '"' {
            // quoted field
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        col(b.len())
                    ));
                }
                if b[i] == '"' {
                    if i + 1 < b.len() && b[i + 1] == '"' {
                        field.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                field.push(b[i]);
                i += 1;
            }
            if i < b.len() && b[i] != ',' {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col(i)
                ));
            }
        } else {
            while i < b.len() && b[i] != ',' {
                if b[i] == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        col(i)
                    ));
                }
                field.push(b[i]);
                i += 1;
            }
        }
        out.push(field);
        if i >= b.len() {
            break;
        }
        i += 1; // the comma
    }
    Ok(CsvList(out))
}

/// Flattens repeated `StringSlice` occurrences.
pub fn flatten(v: &[CsvList]) -> Vec<String> {
    v.iter().flat_map(|c| c.0.iter().cloned()).collect()
}

/// A `key=value` argument of a docker `MapOpts` flag (`-o`, `--ipam-opt`,
/// `--aux-address`): split at the first `=`; without `=` the value is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

pub fn parse_key_value(s: &str) -> Result<KeyValue, String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    Ok(KeyValue {
        key: k.to_string(),
        value: v.to_string(),
    })
}

/// Collects `MapOpts` values into Go's map (a later key wins; iteration sorted).
pub fn to_map(v: &[KeyValue]) -> BTreeMap<String, String> {
    v.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

const WHITESPACE: &[char] = &[' ', '\t'];

/// docker's `opts.ValidateLabel`: the key (before the first `=`, leading blanks ignored)
/// must be non-empty and free of blanks; the argument is kept as given.
pub fn parse_label(s: &str) -> Result<String, String> {
    let key = s.split_once('=').map_or(s, |(k, _)| k);
    let key = key.trim_start_matches(WHITESPACE);
    if key.is_empty() {
        return Err(format!("invalid label '{s}': empty name"));
    }
    if key.contains(WHITESPACE) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(s.to_string())
}

/// docker's `ConvertKVStringsToMap` for labels: `k=v` → `k: v`, `k` → `k: ""`.
pub fn labels_to_map(v: &[String]) -> BTreeMap<String, String> {
    v.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One `--filter name=value` argument (docker `opts.FilterOpt`): name lower-cased and
/// trimmed, value trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterArg {
    pub name: String,
    pub value: String,
}

pub fn parse_filter(s: &str) -> Result<FilterArg, String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err("bad format of filter (expected name=value)".to_string());
    };
    Ok(FilterArg {
        name: name.trim().to_lowercase(),
        value: value.trim().to_string(),
    })
}

/// docker `filters.Args`: name → set of values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

impl Filters {
    pub fn from_args(args: &[FilterArg]) -> Filters {
        let mut f = Filters::default();
        for a in args {
            f.add(&a.name, &a.value);
        }
        f
    }

    pub fn add(&mut self, name: &str, value: &str) {
        self.0
            .entry(name.to_string())
            .or_default()
            .insert(value.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `filters.ToJSON`: `{"name":{"value":true}}`, keys sorted, Go escaping.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, vs)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::write_string(&mut out, k, true);
            out.push_str(":{");
            for (j, v) in vs.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                gojson::write_string(&mut out, v, true);
                out.push_str(":true");
            }
            out.push('}');
        }
        out.push('}');
        out
    }

    /// `?filters=<url-encoded JSON>`, or `""` when there is no filter.
    pub fn query(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            format!("?filters={}", query_escape(&self.to_json()))
        }
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => push_pct(&mut out, b),
        }
    }
    out
}

/// Escapes a path (or path segment) the way Go's `url.URL.EscapedPath` does: unreserved
/// characters and `$&+,/:;=@` stay, everything else is percent-encoded.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            _ => push_pct(&mut out, b),
        }
    }
    out
}

fn push_pct(out: &mut String, b: u8) {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(H[(b >> 4) as usize] as char);
    out.push(H[(b & 0xf) as usize] as char);
}

/// docker client's `trimID`: the reference trimmed; empty is an error.
pub fn trim_id(kind: &str, id: &str) -> Result<String, String> {
    let t = id.trim();
    if t.is_empty() {
        Err(format!("invalid {kind} name or ID: value is empty"))
    } else {
        Ok(t.to_string())
    }
}

/// `sortorder.NaturalLess` (github.com/fvbommel/sortorder), used by docker to sort
/// `network ls` rows: digit runs compare numerically (`a9` < `a10`).
pub fn natural_less(s1: &str, s2: &str) -> bool {
    let (a, b) = (s1.as_bytes(), s2.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (c1, c2) = (a[i], b[j]);
        let (d1, d2) = (c1.is_ascii_digit(), c2.is_ascii_digit());
        if d1 != d2 {
            return d1;
        }
        if !d1 {
            if c1 != c2 {
                return c1 < c2;
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz1, nz2) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (l1, l2) = (i - nz1, j - nz2);
        if l1 != l2 {
            return l1 < l2;
        }
        let (n1, n2) = (&a[nz1..i], &b[nz2..j]);
        if n1 != n2 {
            return n1 < n2;
        }
        if nz1 != nz2 {
            return nz1 < nz2;
        }
    }
    a.len() < b.len()
}

/// `natural_less` as an `Ordering` for stable sorts.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if natural_less(a, b) {
        std::cmp::Ordering::Less
    } else if natural_less(b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "net10", "net9", "bridge", "a10", "a9", "a09", "none", "host", "a", "a1b", "a1",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec!["a", "a1", "a1b", "a9", "a09", "a10", "bridge", "host", "net9", "net10", "none"]
        );
        assert!(natural_less("a9", "a10"));
        assert!(!natural_less("a10", "a9"));
        assert!(natural_less("1x", "ax"));
        assert!(!natural_less("x", "x"));
        assert!(natural_less("x", "xy"));
    }

    #[test]
    fn filter_query_encoding() {
        let f = Filters::from_args(&[
            parse_filter("name=a").unwrap(),
            parse_filter("name=b").unwrap(),
            parse_filter("label=x=y").unwrap(),
        ]);
        assert_eq!(
            f.to_json(),
            r#"{"label":{"x=y":true},"name":{"a":true,"b":true}}"#
        );
        let f = Filters::from_args(&[
            parse_filter("type=custom").unwrap(),
            parse_filter(" Name = a ").unwrap(),
            parse_filter("label=a&b").unwrap(),
        ]);
        assert_eq!(
            f.query(),
            "?filters=%7B%22label%22%3A%7B%22a%5Cu0026b%22%3Atrue%7D%2C%22name%22%3A%7B%22a%22%3Atrue%7D%2C%22type%22%3A%7B%22custom%22%3Atrue%7D%7D"
        );
        let f = Filters::from_args(&[parse_filter("type=custom").unwrap()]);
        assert_eq!(
            f.query(),
            "?filters=%7B%22type%22%3A%7B%22custom%22%3Atrue%7D%7D"
        );
        assert_eq!(Filters::default().query(), "");
        assert_eq!(
            parse_filter("bad").unwrap_err(),
            "bad format of filter (expected name=value)"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            path_escape("a b?c#d!e*f(g)/x:y"),
            "a%20b%3Fc%23d%21e%2Af%28g%29/x:y"
        );
        assert_eq!(query_escape("a b&c/d"), "a+b%26c%2Fd");
    }

    #[test]
    fn csv_and_kv() {
        assert_eq!(parse_csv("a,b").unwrap().0, vec!["a", "b"]);
        assert_eq!(parse_csv("").unwrap().0, Vec::<String>::new());
        assert_eq!(
            parse_csv(r#"10.0.0.0/16,"10.1.0.0/16""#).unwrap().0,
            vec!["10.0.0.0/16", "10.1.0.0/16"]
        );
        assert_eq!(parse_csv(r#""a,b",c"#).unwrap().0, vec!["a,b", "c"]);
        assert_eq!(
            parse_csv("a\"b").unwrap_err(),
            "parse error on line 1, column 2: bare \" in non-quoted-field"
        );
        assert_eq!(parse_key_value("a=b=c").unwrap().value, "b=c");
        assert_eq!(parse_key_value("novalue").unwrap().value, "");
        assert_eq!(
            parse_label("=x").unwrap_err(),
            "invalid label '=x': empty name"
        );
        assert_eq!(
            parse_label(" a b=c").unwrap_err(),
            "label 'a b' contains whitespaces"
        );
        assert_eq!(parse_label(" ab=c").unwrap(), " ab=c");
        assert!(parse_go_bool("false").is_ok_and(|b| !b));
        assert_eq!(parse_go_int("-5"), Ok(-5));
        assert_eq!(parse_go_int("0x10"), Ok(16));
        assert_eq!(parse_go_int("010"), Ok(8));
        assert!(parse_go_int("abc").is_err());
        assert!(parse_go_int("").is_err());
        assert!(parse_go_bool("yes").is_err());
        assert_eq!(
            trim_id("network", "  ").unwrap_err(),
            "invalid network name or ID: value is empty"
        );
    }
}
