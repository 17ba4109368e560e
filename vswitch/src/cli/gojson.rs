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
    check_syntax(src, false).map(|_| ()).map_err(SyntaxError)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    Zero,
    One,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// literal name, bytes matched so far
    Lit(&'static str, usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ParseState {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// What one byte did.
enum Op {
    Continue,
    /// the top-level value ended with this byte (`}` / `]`)
    EndWith,
    /// the top-level value ended before this byte
    End,
}

/// Go's `encoding/json` scanner, for its exact syntax error texts.
struct Scanner {
    step: Step,
    stack: Vec<ParseState>,
    end_top: bool,
    /// `json.Decoder`: bytes after the first value end it instead of failing
    decoder: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        0x20..=0x7e => format!("'{}'", c as char),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        b'\t' => "'\\t'".into(),
        0x07 => "'\\a'".into(),
        0x08 => "'\\b'".into(),
        0x0c => "'\\f'".into(),
        0x0b => "'\\v'".into(),
        c => format!("'\\x{c:02x}'"),
    }
}

impl Scanner {
    fn new(decoder: bool) -> Scanner {
        Scanner {
            step: Step::BeginValue,
            stack: Vec::new(),
            end_top: false,
            decoder,
        }
    }

    fn err(c: u8, ctx: &str) -> String {
        format!("invalid character {} {ctx}", quote_char(c))
    }

    fn pop(&mut self) -> Op {
        self.stack.pop();
        if self.stack.is_empty() {
            self.step = Step::EndTop;
            self.end_top = true;
            Op::EndWith
        } else {
            self.step = Step::EndValue;
            Op::Continue
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<Op, String> {
        if is_space(c) {
            return Ok(Op::Continue);
        }
        self.step = match c {
            b'{' => {
                self.stack.push(ParseState::ObjectKey);
                Step::BeginStringOrEmpty
            }
            b'[' => {
                self.stack.push(ParseState::ArrayValue);
                Step::BeginValueOrEmpty
            }
            b'"' => Step::InString,
            b'-' => Step::Neg,
            b'0' => Step::Zero,
            b'1'..=b'9' => Step::One,
            b't' => Step::Lit("true", 1),
            b'f' => Step::Lit("false", 1),
            b'n' => Step::Lit("null", 1),
            _ => return Err(Self::err(c, "looking for beginning of value")),
        };
        Ok(Op::Continue)
    }

    fn end_value(&mut self, c: u8) -> Result<Op, String> {
        let Some(&ps) = self.stack.last() else {
            self.step = Step::EndTop;
            self.end_top = true;
            return self.end_top_step(c);
        };
        if is_space(c) {
            self.step = Step::EndValue;
            return Ok(Op::Continue);
        }
        let n = self.stack.len();
        match ps {
            ParseState::ObjectKey if c == b':' => {
                self.stack[n - 1] = ParseState::ObjectValue;
                self.step = Step::BeginValue;
                Ok(Op::Continue)
            }
            ParseState::ObjectKey => Err(Self::err(c, "after object key")),
            ParseState::ObjectValue if c == b',' => {
                self.stack[n - 1] = ParseState::ObjectKey;
                self.step = Step::BeginString;
                Ok(Op::Continue)
            }
            ParseState::ObjectValue if c == b'}' => Ok(self.pop()),
            ParseState::ObjectValue => Err(Self::err(c, "after object key:value pair")),
            ParseState::ArrayValue if c == b',' => {
                self.step = Step::BeginValue;
                Ok(Op::Continue)
            }
            ParseState::ArrayValue if c == b']' => Ok(self.pop()),
            ParseState::ArrayValue => Err(Self::err(c, "after array element")),
        }
    }

    fn end_top_step(&mut self, c: u8) -> Result<Op, String> {
        if !is_space(c) && !self.decoder {
            return Err(Self::err(c, "after top-level value"));
        }
        Ok(Op::End)
    }

    fn feed(&mut self, c: u8) -> Result<Op, String> {
        match self.step {
            Step::BeginValue => self.begin_value(c),
            Step::BeginValueOrEmpty => {
                if is_space(c) {
                    Ok(Op::Continue)
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            Step::BeginStringOrEmpty => {
                if is_space(c) {
                    Ok(Op::Continue)
                } else if c == b'}' {
                    let n = self.stack.len();
                    self.stack[n - 1] = ParseState::ObjectValue;
                    self.end_value(c)
                } else {
                    self.feed_begin_string(c)
                }
            }
            Step::BeginString => self.feed_begin_string(c),
            Step::EndValue => self.end_value(c),
            Step::EndTop => self.end_top_step(c),
            Step::InString => {
                match c {
                    b'"' => self.step = Step::EndValue,
                    b'\\' => self.step = Step::InStringEsc,
                    c if c < 0x20 => return Err(Self::err(c, "in string literal")),
                    _ => {}
                }
                Ok(Op::Continue)
            }
            Step::InStringEsc => {
                self.step = match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => Step::InString,
                    b'u' => Step::InStringEscU(0),
                    _ => return Err(Self::err(c, "in string escape code")),
                };
                Ok(Op::Continue)
            }
            Step::InStringEscU(k) => {
                if !c.is_ascii_hexdigit() {
                    return Err(Self::err(c, "in \\u hexadecimal character escape"));
                }
                self.step = if k == 3 {
                    Step::InString
                } else {
                    Step::InStringEscU(k + 1)
                };
                Ok(Op::Continue)
            }
            Step::Neg => {
                self.step = match c {
                    b'0' => Step::Zero,
                    b'1'..=b'9' => Step::One,
                    _ => return Err(Self::err(c, "in numeric literal")),
                };
                Ok(Op::Continue)
            }
            Step::One if c.is_ascii_digit() => Ok(Op::Continue),
            Step::One | Step::Zero => match c {
                b'.' => {
                    self.step = Step::Dot;
                    Ok(Op::Continue)
                }
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(Op::Continue)
                }
                _ => self.end_value(c),
            },
            Step::Dot => {
                if !c.is_ascii_digit() {
                    return Err(Self::err(c, "after decimal point in numeric literal"));
                }
                self.step = Step::Dot0;
                Ok(Op::Continue)
            }
            Step::Dot0 => match c {
                b'0'..=b'9' => Ok(Op::Continue),
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(Op::Continue)
                }
                _ => self.end_value(c),
            },
            Step::E if c == b'+' || c == b'-' => {
                self.step = Step::ESign;
                Ok(Op::Continue)
            }
            Step::E | Step::ESign => {
                if !c.is_ascii_digit() {
                    return Err(Self::err(c, "in exponent of numeric literal"));
                }
                self.step = Step::E0;
                Ok(Op::Continue)
            }
            Step::E0 if c.is_ascii_digit() => Ok(Op::Continue),
            Step::E0 => self.end_value(c),
            Step::Lit(word, i) => {
                let want = word.as_bytes()[i];
                if c != want {
                    return Err(Self::err(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(want)),
                    ));
                }
                self.step = if i + 1 == word.len() {
                    Step::EndValue
                } else {
                    Step::Lit(word, i + 1)
                };
                Ok(Op::Continue)
            }
        }
    }

    fn feed_begin_string(&mut self, c: u8) -> Result<Op, String> {
        if is_space(c) {
            return Ok(Op::Continue);
        }
        if c == b'"' {
            self.step = Step::InString;
            return Ok(Op::Continue);
        }
        Err(Self::err(c, "looking for beginning of object key string"))
    }
}

/// Checks `src` with Go's JSON scanner and returns Go's error text on failure.
///
/// `decoder`: `json.Decoder.Decode` semantics — only the first value counts (trailing
/// bytes are ignored), an empty input is `EOF`, a truncated one `unexpected EOF`; the
/// result is the end offset of that first value. Otherwise `json.Unmarshal` / `Valid`
/// semantics: the whole input must be one value (`unexpected end of JSON input`,
/// `invalid character 'x' after top-level value`); the result is `src.len()`.
pub fn check_syntax(src: &[u8], decoder: bool) -> Result<usize, String> {
    let mut sc = Scanner::new(decoder);
    for (i, &c) in src.iter().enumerate() {
        match sc.feed(c)? {
            Op::Continue => {}
            Op::EndWith if decoder => return Ok(i + 1),
            Op::End if decoder => return Ok(i),
            Op::End | Op::EndWith => {}
        }
    }
    // EOF: a pending number or literal ends here
    if sc.end_top || matches!(sc.feed(b' '), Ok(Op::End)) {
        return Ok(src.len());
    }
    if decoder {
        if src.iter().all(|&c| is_space(c)) {
            return Err("EOF".into());
        }
        return Err("unexpected EOF".into());
    }
    Err("unexpected end of JSON input".into())
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
        let src =
            br#"{"Id":"abc","Name":"mini", "X": [ ], "Y":{ }, "S":"a\u003cb\"c","N":[1,{"z":null}]}
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
    fn go_syntax_errors() {
        let u = |s: &str| check_syntax(s.as_bytes(), false).unwrap_err();
        let d = |s: &str| check_syntax(s.as_bytes(), true);
        assert_eq!(
            u("{bad"),
            "invalid character 'b' looking for beginning of object key string"
        );
        assert_eq!(
            u("nope"),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(u("[1] x"), "invalid character 'x' after top-level value");
        assert_eq!(u("[1 2]"), "invalid character '2' after array element");
        assert_eq!(u("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            u("{\"a\":1 x"),
            "invalid character 'x' after object key:value pair"
        );
        assert_eq!(
            u("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(u("\"a\\x\""), "invalid character 'x' in string escape code");
        assert_eq!(u("-a"), "invalid character 'a' in numeric literal");
        assert_eq!(
            u("1.a"),
            "invalid character 'a' after decimal point in numeric literal"
        );
        assert_eq!(u("{\"a\":"), "unexpected end of JSON input");
        assert_eq!(
            u("'"),
            "invalid character '\\'' looking for beginning of value"
        );
        assert_eq!(d(""), Err("EOF".into()));
        assert_eq!(d("  \n"), Err("EOF".into()));
        assert_eq!(d("{\"a\":"), Err("unexpected EOF".into()));
        assert_eq!(d("{\"Name\":\"g\"} trailing"), Ok(12));
        assert_eq!(d("12 x"), Ok(2));
        assert_eq!(d("12x"), Ok(2));
        assert_eq!(d("\"a\"}"), Ok(3));
        assert_eq!(d("\"a\"x"), Ok(3));
        assert_eq!(d("12"), Ok(2));
        assert_eq!(d("true"), Ok(4));
        assert_eq!(d("[]\n"), Ok(2));
        assert_eq!(check_syntax(b"[1]\n", false), Ok(4));
    }

    #[test]
    fn indent_rejects_garbage() {
        assert!(indent(b"{\"a\":", "", "  ").is_err());
        assert!(indent(b"[1] x", "", "  ").is_err());
    }

    #[test]
    fn object_writer() {
        let mut o = ObjectWriter::new();
        o.str("A", "x&y")
            .bool("B", true)
            .int("C", -3)
            .raw("D", "null");
        assert_eq!(o.finish(), r#"{"A":"x\u0026y","B":true,"C":-3,"D":null}"#);
    }
}
