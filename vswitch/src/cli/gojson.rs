//! Byte-exact helpers for Go's `encoding/json` output.
//!
//! The docker CLI sends request bodies produced by Go's `json.Encoder` (HTML escaping on,
//! compact, trailing newline) and re-indents the daemon's raw inspect bytes with
//! `json.Indent`, which keeps the daemon's key order. serde_json neither escapes HTML nor
//! preserves key order (without `preserve_order`), so these small helpers do both jobs.

use std::collections::BTreeMap;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal exactly as Go's encoder writes it. With
/// `escape_html`, `<`, `>` and `&` become `\u003c`, `\u003e`, `\u0026` (Go's default for
/// `json.Marshal` / `json.NewEncoder`); U+2028 and U+2029 are always escaped.
pub fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => push_u00(out, c as u8),
            c if (c as u32) < 0x20 => push_u00(out, c as u8),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_u00(out: &mut String, b: u8) {
    out.push_str("\\u00");
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 0xf) as usize] as char);
}

/// `s` as a Go JSON string literal (HTML-escaped, like `json.Marshal`).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s, true);
    out
}

/// A `map[string]string` encoded like Go (keys sorted, HTML escaped).
pub fn string_map(m: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, k, true);
        out.push(':');
        write_string(&mut out, v, true);
    }
    out.push('}');
    out
}

/// A `[]string` encoded like Go; `None` is a nil slice (`null`).
pub fn string_slice(v: Option<&[String]>) -> String {
    let Some(v) = v else {
        return "null".to_string();
    };
    let mut out = String::from("[");
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, s, true);
    }
    out.push(']');
    out
}

/// Incremental writer for a compact JSON object with keys in insertion order.
#[derive(Debug, Default)]
pub struct ObjectWriter {
    buf: String,
    first: bool,
}

impl ObjectWriter {
    pub fn new() -> Self {
        ObjectWriter {
            buf: String::from("{"),
            first: true,
        }
    }

    /// Adds `"key":<raw>` where `raw` is already-encoded JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        write_string(&mut self.buf, key, true);
        self.buf.push(':');
        self.buf.push_str(raw);
        self
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.raw(key, &quote(v))
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        self.raw(key, &v.to_string())
    }

    pub fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.buf);
        s.push('}');
        s
    }
}

/// Error from [`indent`] / [`compact`] on input that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

/// Go's `json.Indent(dst, src, prefix, indent)`: re-indents valid JSON token by token,
/// keeping key order, string bytes (escapes included) and number spelling verbatim.
/// Empty objects and arrays stay `{}` / `[]`. Leading whitespace is dropped, insignificant
/// whitespace inside is removed, trailing whitespace after the value is kept (as Go does).
pub fn indent(src: &[u8], prefix: &str, indent: &str) -> Result<String, SyntaxError> {
    reformat(src, Some((prefix, indent)))
}

/// Go's `json.Compact`: drops insignificant whitespace, keeps everything else verbatim.
pub fn compact(src: &[u8]) -> Result<String, SyntaxError> {
    reformat(src, None)
}

fn reformat(src: &[u8], ind: Option<(&str, &str)>) -> Result<String, SyntaxError> {
    validate(src)?;
    let mut dst: Vec<u8> = Vec::with_capacity(src.len() * 2);
    let newline = |dst: &mut Vec<u8>, depth: usize| {
        if let Some((prefix, indent)) = ind {
            dst.push(b'\n');
            dst.extend_from_slice(prefix.as_bytes());
            for _ in 0..depth {
                dst.extend_from_slice(indent.as_bytes());
            }
        }
    };
    let mut need_indent = false;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // Index just past the top-level value: trailing whitespace is copied as-is.
    let end = value_end(src);
    for (i, &c) in src.iter().enumerate() {
        if i >= end {
            if ind.is_some() {
                dst.push(c);
            }
            continue;
        }
        if in_string {
            dst.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        if need_indent && c != b'}' && c != b']' {
            need_indent = false;
            depth += 1;
            newline(&mut dst, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                dst.push(c);
            }
            b'{' | b'[' => {
                need_indent = ind.is_some();
                dst.push(c);
            }
            b',' => {
                dst.push(c);
                newline(&mut dst, depth);
            }
            b':' => {
                dst.push(c);
                if ind.is_some() {
                    dst.push(b' ');
                }
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else if ind.is_some() {
                    depth = depth.saturating_sub(1);
                    newline(&mut dst, depth);
                }
                dst.push(c);
            }
            _ => dst.push(c),
        }
    }
    String::from_utf8(dst).map_err(|e| SyntaxError(e.to_string()))
}

/// Position just past the first JSON value (after leading whitespace) in `src`.
fn value_end(src: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut started = false;
    for (i, &c) in src.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
                if depth == 0 {
                    return i + 1;
                }
            }
            continue;
        }
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                if started && depth == 0 {
                    return i;
                }
            }
            b'"' => {
                in_string = true;
                started = true;
            }
            b'{' | b'[' => {
                depth += 1;
                started = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => started = true,
        }
    }
    src.len()
}

fn validate(src: &[u8]) -> Result<(), SyntaxError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(src)
        .map(|_| ())
        .map_err(|e| SyntaxError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_go() {
        let mut s = String::new();
        write_string(&mut s, "a<b>&\"\\\n\t\u{1}\u{8}\u{c}\u{2028}é", true);
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\t\u0001\b\f\u2028é""#);
        let mut s = String::new();
        write_string(&mut s, "a<b>&", false);
        assert_eq!(s, r#""a<b>&""#);
    }

    #[test]
    fn indent_keeps_order_and_empty_containers() {
        let src = br#"{"Id":"abc","Name":"mini", "X": [ ], "Y":{ }, "S":"a\u003cb\"c","N":[1,{"z":null}]}
"#;
        let got = indent(src, "", "    ").unwrap();
        let want = "{\n    \"Id\": \"abc\",\n    \"Name\": \"mini\",\n    \"X\": [],\n    \"Y\": {},\n    \"S\": \"a\\u003cb\\\"c\",\n    \"N\": [\n        1,\n        {\n            \"z\": null\n        }\n    ]\n}\n";
        assert_eq!(got, want);
        assert_eq!(
            compact(src).unwrap(),
            r#"{"Id":"abc","Name":"mini","X":[],"Y":{},"S":"a\u003cb\"c","N":[1,{"z":null}]}"#
        );
    }

    #[test]
    fn indent_rejects_garbage() {
        assert!(indent(b"{\"a\":", "", "  ").is_err());
        assert!(indent(b"[1] x", "", "  ").is_err());
    }

    #[test]
    fn object_writer() {
        let mut o = ObjectWriter::new();
        o.str("A", "x&y").bool("B", true).int("C", -3).raw("D", "null");
        assert_eq!(o.finish(), r#"{"A":"x\u0026y","B":true,"C":-3,"D":null}"#);
    }
}
