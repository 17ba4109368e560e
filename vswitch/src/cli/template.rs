//! A Go `text/template` engine (the subset docker's `--format` users rely on), with the
//! docker CLI's extra functions (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`,
//! `truncate`) and Go's error texts.
//!
//! Supported: text, `{{pipeline}}` with field chains (`.IPAM.Config`), method calls with
//! arguments (`.Label "k"`), variables (`$`, `$x := …`, `$x = …`), parenthesised pipelines,
//! `|` pipes, string / raw-string / number / char / bool literals, `{{if}}` / `{{with}}` /
//! `{{range}}` with `{{else}}` / `{{else if}}` / `{{else with}}`, `{{break}}` /
//! `{{continue}}`, comments, `{{-` / `-}}` trimming, and the builtins `and or not len index
//! eq ne lt le gt ge print printf println urlquery html`. Not supported: `define`,
//! `template`, `block`, `call`, `slice`, `js`, floating-point literals.
//!
//! Values are [`Value`]s: printed like `fmt.Print` (`map[k:v]`, `[a b]`, `{a b}`, missing
//! → `<no value>`).

use std::collections::BTreeMap;
use std::fmt;

use super::gotime::GoTime;
use super::goval::{Ty, Value};
use super::opts::query_escape;

/// How a template is executed.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// Go's `Option("missingkey=error")` (docker's raw-JSON inspect fallback).
    pub missing_key_error: bool,
    /// Replace the string functions by docker's `HeaderFunctions` (table headers).
    pub header: bool,
}

/// A failed execution: Go's error text and the output written before the failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub message: String,
    pub partial: String,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExecError {}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<Node>,
}

impl Template {
    /// Parses `src` (Go's `template.New("").Funcs(docker funcs).Parse(src)`). Errors read
    /// like Go's: `template: :1: unclosed action`.
    pub fn parse(src: &str) -> Result<Template, String> {
        let toks = lex(src).map_err(|(line, msg)| format!("template: :{line}: {msg}"))?;
        let mut p = Parser {
            src,
            toks,
            i: 0,
            vars: vec!["$".to_string()],
            range_depth: 0,
            line: 1,
        };
        let root = p
            .parse_root()
            .map_err(|msg| format!("template: :{}: {msg}", p.line))?;
        Ok(Template {
            src: src.to_string(),
            root,
        })
    }

    /// Executes the template with `data` as dot.
    pub fn execute(&self, data: &Value, opts: &ExecOptions) -> Result<String, ExecError> {
        let mut ex = Exec {
            opts,
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
            depth: 0,
        };
        match ex.walk_list(&self.root, data) {
            Ok(_) => Ok(ex.out),
            Err(e) => Err(ExecError {
                message: e.render(&self.src),
                partial: ex.out,
            }),
        }
    }

    /// Parses and executes in one go.
    pub fn render(src: &str, data: &Value) -> Result<String, String> {
        let t = Template::parse(src)?;
        t.execute(data, &ExecOptions::default())
            .map_err(|e| e.message)
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Text(String),
    LDelim,
    RDelim,
    Space,
    /// `.Name` (the name without the dot)
    Field(String),
    Dot,
    /// `$` or `$name`
    Var(String),
    Ident(String),
    /// quoted text as written, decoded value
    Str(String, String),
    Number(String),
    Char(char),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Keyword(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
struct Item {
    tok: Tok,
    pos: usize,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn line_of(src: &str, pos: usize) -> usize {
    1 + src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn lex(src: &str) -> Result<Vec<Item>, (usize, String)> {
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next_text = false;
    loop {
        let rest = &src[pos..];
        let idx = rest.find("{{");
        let text_end = idx.map_or(src.len(), |i| pos + i);
        let mut text = &src[pos..text_end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next_text = false;
        }
        let Some(_) = idx else {
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    pos,
                });
            }
            items.push(Item {
                tok: Tok::Eof,
                pos: src.len(),
            });
            return Ok(items);
        };
        let ld = text_end;
        let left_trim = b.len() > ld + 3 && b[ld + 2] == b'-' && is_space(b[ld + 3]);
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                pos,
            });
        }
        pos = ld + 2 + if left_trim { 2 } else { 0 };
        // comment
        if src[pos..].starts_with("/*") {
            let Some(end) = src[pos + 2..].find("*/") else {
                return Err((line_of(src, ld), "unclosed comment".into()));
            };
            pos = pos + 2 + end + 2;
            let after = &src[pos..];
            if after.starts_with(" -}}")
                || after.starts_with("\t-}}")
                || after.starts_with("\n-}}")
                || after.starts_with("\r-}}")
            {
                pos += 4;
                trim_next_text = true;
            } else if after.starts_with("}}") {
                pos += 2;
            } else {
                return Err((
                    line_of(src, pos),
                    "comment ends before closing delimiter".into(),
                ));
            }
            continue;
        }
        items.push(Item {
            tok: Tok::LDelim,
            pos: ld,
        });
        // inside action
        let mut depth = 0i32;
        loop {
            let r = &src[pos..];
            if r.len() >= 4 && is_space(r.as_bytes()[0]) && r[1..].starts_with("-}}") {
                if depth != 0 {
                    return Err((line_of(src, pos), "unclosed left paren".into()));
                }
                items.push(Item {
                    tok: Tok::RDelim,
                    pos: pos + 1,
                });
                pos += 4;
                trim_next_text = true;
                break;
            }
            if r.starts_with("}}") {
                if depth != 0 {
                    return Err((line_of(src, pos), "unclosed left paren".into()));
                }
                items.push(Item {
                    tok: Tok::RDelim,
                    pos,
                });
                pos += 2;
                break;
            }
            let Some(c) = r.chars().next() else {
                return Err((line_of(src, pos), "unclosed action".into()));
            };
            let start = pos;
            let push = |items: &mut Vec<Item>, tok: Tok| items.push(Item { tok, pos: start });
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut e = pos;
                    while e < b.len() && is_space(b[e]) {
                        e += 1;
                    }
                    // keep the last blank for a " -}}" trim marker
                    if e > pos + 1 && src[e..].starts_with("-}}") {
                        e -= 1;
                    }
                    push(&mut items, Tok::Space);
                    pos = e;
                }
                '=' => {
                    push(&mut items, Tok::Assign);
                    pos += 1;
                }
                ':' => {
                    if !r[1..].starts_with('=') {
                        return Err((line_of(src, pos), "expected :=".into()));
                    }
                    push(&mut items, Tok::Declare);
                    pos += 2;
                }
                '|' => {
                    push(&mut items, Tok::Pipe);
                    pos += 1;
                }
                '"' => {
                    let mut e = pos + 1;
                    loop {
                        match b.get(e) {
                            None | Some(b'\n') => {
                                return Err((
                                    line_of(src, pos),
                                    "unterminated quoted string".into(),
                                ))
                            }
                            Some(b'\\') => e += 2,
                            Some(b'"') => break,
                            _ => e += 1,
                        }
                    }
                    let quoted = &src[pos..=e];
                    let val = unquote(quoted).map_err(|m| (line_of(src, pos), m))?;
                    push(&mut items, Tok::Str(quoted.to_string(), val));
                    pos = e + 1;
                }
                '`' => {
                    let Some(end) = src[pos + 1..].find('`') else {
                        return Err((line_of(src, pos), "unterminated raw quoted string".into()));
                    };
                    let quoted = &src[pos..pos + 1 + end + 1];
                    let val = src[pos + 1..pos + 1 + end].replace('\r', "");
                    push(&mut items, Tok::Str(quoted.to_string(), val));
                    pos += end + 2;
                }
                '$' => {
                    let mut e = pos + 1;
                    for ch in src[e..].chars() {
                        if !is_alnum(ch) {
                            break;
                        }
                        e += ch.len_utf8();
                    }
                    check_terminator(src, e)?;
                    push(&mut items, Tok::Var(src[pos..e].to_string()));
                    pos = e;
                }
                '\'' => {
                    let mut e = pos + 1;
                    loop {
                        match b.get(e) {
                            None | Some(b'\n') => {
                                return Err((
                                    line_of(src, pos),
                                    "unterminated character constant".into(),
                                ))
                            }
                            Some(b'\\') => e += 2,
                            Some(b'\'') => break,
                            _ => e += 1,
                        }
                    }
                    let text = &src[pos..=e];
                    let inner = format!("\"{}\"", &text[1..text.len() - 1].replace("\\'", "'"));
                    let val = unquote(&inner).map_err(|m| (line_of(src, pos), m))?;
                    let mut chars = val.chars();
                    let (Some(ch), None) = (chars.next(), chars.next()) else {
                        return Err((
                            line_of(src, pos),
                            format!("malformed character constant: {text}"),
                        ));
                    };
                    push(&mut items, Tok::Number(format!("{}", ch as u32)));
                    pos = e + 1;
                }
                '.' => {
                    let next = r[1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        let e = scan_number(src, pos);
                        push(&mut items, Tok::Number(src[pos..e].to_string()));
                        pos = e;
                        check_terminator(src, pos)?;
                        continue;
                    }
                    let mut e = pos + 1;
                    for ch in src[e..].chars() {
                        if !is_alnum(ch) {
                            break;
                        }
                        e += ch.len_utf8();
                    }
                    if e == pos + 1 {
                        push(&mut items, Tok::Dot);
                        pos = e;
                    } else {
                        check_terminator(src, e)?;
                        push(&mut items, Tok::Field(src[pos + 1..e].to_string()));
                        pos = e;
                    }
                }
                '+' | '-' | '0'..='9' => {
                    let e = scan_number(src, pos);
                    push(&mut items, Tok::Number(src[pos..e].to_string()));
                    pos = e;
                    check_terminator(src, pos)?;
                }
                '(' => {
                    depth += 1;
                    push(&mut items, Tok::LParen);
                    pos += 1;
                }
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err((line_of(src, pos), "unexpected right paren".into()));
                    }
                    push(&mut items, Tok::RParen);
                    pos += 1;
                }
                c if is_alnum(c) => {
                    let mut e = pos;
                    for ch in src[e..].chars() {
                        if !is_alnum(ch) {
                            break;
                        }
                        e += ch.len_utf8();
                    }
                    check_terminator(src, e)?;
                    let word = &src[pos..e];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w.to_string()),
                        },
                    };
                    push(&mut items, tok);
                    pos = e;
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    push(&mut items, Tok::Char(c));
                    pos += 1;
                }
                c => {
                    return Err((
                        line_of(src, pos),
                        format!("unrecognized character in action: {}", go_u(c)),
                    ))
                }
            }
        }
    }
}

fn go_u(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}

fn check_terminator(src: &str, pos: usize) -> Result<(), (usize, String)> {
    let r = &src[pos..];
    let Some(c) = r.chars().next() else {
        return Ok(());
    };
    if is_space(c as u8) && c.is_ascii()
        || matches!(c, '.' | ',' | '|' | ':' | ')' | '(')
        || r.starts_with("}}")
    {
        return Ok(());
    }
    Err((line_of(src, pos), format!("bad character {}", go_u(c))))
}

fn scan_number(src: &str, pos: usize) -> usize {
    let b = src.as_bytes();
    let mut e = pos;
    if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
        e += 1;
    }
    while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_' || b[e] == b'.') {
        // exponent signs
        if (b[e] == b'e' || b[e] == b'E' || b[e] == b'p' || b[e] == b'P')
            && e + 1 < b.len()
            && (b[e + 1] == b'+' || b[e + 1] == b'-')
        {
            e += 1;
        }
        e += 1;
    }
    e
}

/// Go's `strconv.Unquote` for a double-quoted literal.
fn unquote(q: &str) -> Result<String, String> {
    let inner = &q[1..q.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    let bad = || "invalid syntax".to_string();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v = 0u32;
                for _ in 0..n {
                    let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
                    v = v * 16 + d;
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn parse_int(text: &str) -> Option<i64> {
    let t = text.replace('_', "");
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(bn) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        i64::from_str_radix(bn, 2).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

// ---------------------------------------------------------------------------------------
// AST

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Clone, Debug)]
struct Branch {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Clone, Debug)]
struct Pipe {
    pos: usize,
    decl: Vec<String>,
    is_assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Clone, Debug)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Clone, Debug)]
enum Arg {
    Field(usize, Vec<String>),
    Var(usize, String, Vec<String>),
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, i64, String),
    Str(usize, String, String),
    Ident(usize, String),
    Pipe(usize, Box<Pipe>),
    Chain(usize, Box<Arg>, Vec<String>),
}

impl Arg {
    fn pos(&self) -> usize {
        match self {
            Arg::Field(p, _)
            | Arg::Var(p, _, _)
            | Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Number(p, _, _)
            | Arg::Str(p, _, _)
            | Arg::Ident(p, _)
            | Arg::Pipe(p, _)
            | Arg::Chain(p, _, _) => *p,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field(_, ids) => {
                for id in ids {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Var(_, name, ids) => {
                f.write_str(name)?;
                for id in ids {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, _, t) => f.write_str(t),
            Arg::Str(_, q, _) => f.write_str(q),
            Arg::Ident(_, n) => f.write_str(n),
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Chain(_, n, ids) => {
                if let Arg::Pipe(_, p) = n.as_ref() {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{n}")?;
                }
                for id in ids {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Parser

const FUNCS: &[&str] = &[
    // Go builtins
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println",
    "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
    // docker/cli templates.basicFunctions
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Item>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    line: usize,
}

enum Ended {
    End,
    Else,
}

impl Parser<'_> {
    fn next(&mut self) -> Item {
        let it = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        self.line = line_of(self.src, it.pos);
        it
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&self) -> &Item {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.tok != Tok::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let it = self.next_non_space();
        self.backup();
        it
    }

    fn parse_root(&mut self) -> Result<Vec<Node>, String> {
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::Eof {
                return Ok(list);
            }
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return Err("unexpected {{end}}".into()),
                Parsed::Else => return Err("unexpected {{else}}".into()),
            }
        }
    }

    fn item_list(&mut self) -> Result<(Vec<Node>, Ended), String> {
        let mut list = Vec::new();
        loop {
            if self.peek_non_space().tok == Tok::Eof {
                self.next();
                return Err("unexpected EOF".into());
            }
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return Ok((list, Ended::End)),
                Parsed::Else => return Ok((list, Ended::Else)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Parsed, String> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Text(t) => Ok(Parsed::Node(Node::Text(t))),
            Tok::LDelim => self.action(),
            other => Err(format!("unexpected {} in input", tok_str(&other))),
        }
    }

    fn action(&mut self) -> Result<Parsed, String> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Keyword("else") => {
                let p = self.peek_non_space();
                if matches!(p.tok, Tok::Keyword("if") | Tok::Keyword("with")) {
                    return Ok(Parsed::Else);
                }
                self.expect_rdelim("else")?;
                Ok(Parsed::Else)
            }
            Tok::Keyword("end") => {
                self.expect_rdelim("end")?;
                Ok(Parsed::End)
            }
            Tok::Keyword("if") => Ok(Parsed::Node(Node::If(Box::new(self.control("if")?)))),
            Tok::Keyword("with") => Ok(Parsed::Node(Node::With(Box::new(self.control("with")?)))),
            Tok::Keyword("range") => {
                Ok(Parsed::Node(Node::Range(Box::new(self.control("range")?))))
            }
            Tok::Keyword(k @ ("break" | "continue")) => {
                if self.range_depth == 0 {
                    return Err(format!("{{{{{k}}}}} outside {{{{range}}}}"));
                }
                self.expect_rdelim(k)?;
                Ok(Parsed::Node(if k == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Tok::Keyword(k) => Err(format!("{{{{{k}}}}} is not supported by vswitch")),
            _ => {
                self.backup();
                let pipe = self.pipeline("command", true)?;
                Ok(Parsed::Node(Node::Action(pipe)))
            }
        }
    }

    fn expect_rdelim(&mut self, ctx: &str) -> Result<(), String> {
        let it = self.next_non_space();
        if it.tok != Tok::RDelim {
            return Err(format!("unexpected {} in {ctx}", tok_str(&it.tok)));
        }
        Ok(())
    }

    fn control(&mut self, ctx: &'static str) -> Result<Branch, String> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(ctx, true)?;
        if ctx == "range" {
            self.range_depth += 1;
        }
        let (list, ended) = self.item_list()?;
        if ctx == "range" {
            self.range_depth -= 1;
        }
        let else_list = match ended {
            Ended::End => None,
            Ended::Else => {
                let p = self.peek().tok.clone();
                if ctx == "if" && p == Tok::Keyword("if") {
                    self.next();
                    Some(vec![Node::If(Box::new(self.control("if")?))])
                } else if ctx == "with" && p == Tok::Keyword("with") {
                    self.next();
                    Some(vec![Node::With(Box::new(self.control("with")?))])
                } else {
                    let (l, e) = self.item_list()?;
                    if !matches!(e, Ended::End) {
                        return Err("expected end; found {{else}}".into());
                    }
                    Some(l)
                }
            }
        };
        self.vars.truncate(nvars);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// `end_delim`: the pipeline ends at `}}` (else at `)`).
    fn pipeline(&mut self, ctx: &str, end_delim: bool) -> Result<Pipe, String> {
        let start = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos: start,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // declarations
        loop {
            let save = self.i;
            let v = self.next_non_space();
            let Tok::Var(name) = v.tok else {
                self.i = save;
                break;
            };
            let next = self.peek_non_space();
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    self.next_non_space();
                    pipe.is_assign = next.tok == Tok::Assign;
                    if !pipe.is_assign {
                        self.vars.push(name.clone());
                    } else if !self.vars.contains(&name) {
                        return Err(format!("undefined variable \"{name}\""));
                    }
                    pipe.decl.push(name);
                    break;
                }
                Tok::Char(',') => {
                    self.next_non_space();
                    self.vars.push(name.clone());
                    pipe.decl.push(name);
                    if ctx == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Var(_) | Tok::RDelim | Tok::RParen => continue,
                            _ => return Err("range can only initialize variables".into()),
                        }
                    }
                    return Err(format!("too many declarations in {ctx}"));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let it = self.next_non_space();
            match it.tok {
                Tok::RDelim if end_delim => break,
                Tok::RParen if !end_delim => break,
                Tok::Bool(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(..)
                | Tok::Var(_)
                | Tok::LParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                other => return Err(format!("unexpected {} in {ctx}", tok_str(&other))),
            }
        }
        if pipe.cmds.is_empty() {
            return Err(format!("missing value for {ctx}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..)
            ) {
                return Err(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(pipe)
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Cmd {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                cmd.args.push(a);
            }
            let it = self.next();
            match it.tok {
                Tok::Space => continue,
                Tok::RDelim | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                other => return Err(format!("unexpected {} in operand", tok_str(&other))),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err("empty command".into());
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if !matches!(self.peek().tok, Tok::Field(_)) {
            return Ok(Some(node));
        }
        // Go positions a chained node at its first chained field (`.B` in `.A.B`).
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while let Tok::Field(f) = self.peek().tok.clone() {
            self.next();
            fields.push(f);
        }
        Ok(Some(match node {
            Arg::Field(_, mut ids) => {
                ids.extend(fields);
                Arg::Field(chain_pos, ids)
            }
            Arg::Var(_, n, mut ids) => {
                ids.extend(fields);
                Arg::Var(chain_pos, n, ids)
            }
            n @ (Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_)) => {
                return Err(format!("unexpected . after term \"{n}\""))
            }
            n => Arg::Chain(chain_pos, Box::new(n), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, String> {
        let it = self.next_non_space();
        let p = it.pos;
        Ok(Some(match it.tok {
            Tok::Ident(name) => {
                if !FUNCS.contains(&name.as_str()) {
                    return Err(format!("function \"{name}\" not defined"));
                }
                Arg::Ident(p, name)
            }
            Tok::Dot => Arg::Dot(p),
            Tok::Nil => Arg::Nil(p),
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return Err(format!("undefined variable \"{name}\""));
                }
                Arg::Var(p, name, Vec::new())
            }
            Tok::Field(f) => Arg::Field(p, vec![f]),
            Tok::Bool(b) => Arg::Bool(p, b),
            Tok::Number(t) => match parse_int(&t) {
                Some(v) => Arg::Number(p, v, t),
                None => return Err(format!("bad number syntax: \"{t}\"")),
            },
            Tok::LParen => Arg::Pipe(p, Box::new(self.pipeline("parenthesized pipeline", false)?)),
            Tok::Str(q, v) => Arg::Str(p, q, v),
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

enum Parsed {
    Node(Node),
    End,
    Else,
}

fn tok_str(t: &Tok) -> String {
    let q = |s: &str| {
        if s.chars().count() > 10 {
            format!("{:?}...", s.chars().take(10).collect::<String>())
        } else {
            format!("{s:?}")
        }
    };
    match t {
        Tok::Eof => "EOF".into(),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Text(s) => q(s),
        Tok::LDelim => q("{{"),
        Tok::RDelim => q("}}"),
        Tok::Space => q(" "),
        Tok::Field(f) => q(&format!(".{f}")),
        Tok::Dot => q("."),
        Tok::Var(v) => q(v),
        Tok::Ident(i) => q(i),
        Tok::Str(s, _) => q(s),
        Tok::Number(n) => q(n),
        Tok::Char(c) => q(&c.to_string()),
        Tok::Bool(b) => q(&b.to_string()),
        Tok::Nil => q("nil"),
        Tok::Pipe => q("|"),
        Tok::LParen => q("("),
        Tok::RParen => q(")"),
        Tok::Declare => q(":="),
        Tok::Assign => q("="),
    }
}

// ---------------------------------------------------------------------------------------
// Execution

struct Fail {
    pos: usize,
    node: String,
    msg: String,
}

impl Fail {
    fn render(&self, src: &str) -> String {
        let pos = self.pos.min(src.len());
        let before = &src[..pos];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - (i + 1),
            None => pos,
        };
        format!(
            "template: :{line}:{col}: executing \"\" at <{}>: {}",
            self.node, self.msg
        )
    }
}

type R<T> = Result<T, Fail>;

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    opts: &'a ExecOptions,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
}

const MAX_DEPTH: usize = 10_000;

fn fail(pos: usize, node: impl fmt::Display, msg: impl Into<String>) -> Fail {
    Fail {
        pos,
        node: node.to_string(),
        msg: msg.into(),
    }
}

impl Exec<'_> {
    fn walk_list(&mut self, list: &[Node], dot: &Value) -> R<Flow> {
        for n in list {
            match self.walk(n, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, n: &Node, dot: &Value) -> R<Flow> {
        match n {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.eval_pipeline(dot, p)?;
                if p.decl.is_empty() {
                    self.print(&v);
                }
            }
            Node::If(b) | Node::With(b) => {
                let mark = self.vars.len();
                let v = self.eval_pipeline(dot, &b.pipe)?;
                let flow = if v.truth() {
                    if matches!(n, Node::With(_)) {
                        self.walk_list(&b.list, &v)?
                    } else {
                        self.walk_list(&b.list, dot)?
                    }
                } else if let Some(e) = &b.else_list {
                    self.walk_list(e, dot)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => {
                let mark = self.vars.len();
                let flow = self.walk_range(b, dot)?;
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_range(&mut self, b: &Branch, dot: &Value) -> R<Flow> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut elems: Vec<(Value, Value)> = Vec::new();
        match &val {
            Value::Slice { items, .. } => {
                for (i, v) in items.iter().flat_map(|v| v.iter()).enumerate() {
                    elems.push((Value::Int(i as i64), v.clone()));
                }
            }
            Value::Map { entries, .. } => {
                for (k, v) in entries.iter().flat_map(|m| m.iter()) {
                    elems.push((Value::Str(k.clone()), v.clone()));
                }
            }
            Value::Int(n) => {
                for i in 0..*n {
                    elems.push((Value::Int(i), Value::Int(i)));
                }
            }
            Value::Invalid | Value::Nil => {}
            other => {
                return Err(fail(
                    b.pipe.pos,
                    &b.pipe,
                    format!("range can't iterate over {}", other.go_fmt_string()),
                ))
            }
        }
        if elems.is_empty() {
            if let Some(e) = &b.else_list {
                return self.walk_list(e, dot);
            }
            return Ok(Flow::Normal);
        }
        for (k, v) in elems {
            let n = self.vars.len();
            if !b.pipe.decl.is_empty() && n > 0 {
                self.vars[n - 1].1 = v.clone();
                if b.pipe.decl.len() > 1 && n > 1 {
                    self.vars[n - 2].1 = k;
                }
            }
            let flow = self.walk_list(&b.list, &v)?;
            self.vars.truncate(mark);
            if let Flow::Break = flow {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, v: &Value) {
        match v {
            Value::Invalid | Value::Nil => self.out.push_str("<no value>"),
            v => v.go_fmt(&mut self.out, true),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(fail(p.pos, p, "exceeded maximum template depth (10000)"));
        }
        let mut value: Option<Value> = None;
        for c in &p.cmds {
            value = Some(self.eval_command(dot, c, value)?);
        }
        self.depth -= 1;
        let value = value.unwrap_or(Value::Invalid);
        for name in &p.decl {
            if p.is_assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(&mut self, dot: &Value, c: &Cmd, fin: Option<Value>) -> R<Value> {
        let first = &c.args[0];
        let rest = &c.args[1..];
        match first {
            Arg::Field(p, ids) => {
                self.eval_field_chain(dot, dot.clone(), first, *p, ids, rest, fin)
            }
            Arg::Chain(p, node, ids) => {
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, first, *p, ids, rest, fin)
            }
            Arg::Var(p, name, ids) => {
                let v = self.var(name);
                if ids.is_empty() {
                    if !rest.is_empty() || fin.is_some() {
                        return Err(fail(
                            *p,
                            first,
                            format!("can't give argument to non-function {first}"),
                        ));
                    }
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, first, *p, ids, rest, fin)
            }
            Arg::Pipe(p, pipe) => {
                if !rest.is_empty() || fin.is_some() {
                    return Err(fail(
                        *p,
                        first,
                        format!("can't give argument to non-function {first}"),
                    ));
                }
                self.eval_pipeline(dot, pipe)
            }
            Arg::Ident(p, name) => self.eval_function(dot, *p, name, c, rest, fin),
            Arg::Nil(p) => Err(fail(*p, first, "nil is not a command")),
            lit => {
                if !rest.is_empty() || fin.is_some() {
                    return Err(fail(
                        lit.pos(),
                        lit,
                        format!("can't give argument to non-function {lit}"),
                    ));
                }
                self.eval_arg(dot, lit)
            }
        }
    }

    fn var(&self, name: &str) -> Value {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Invalid)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        node: &Arg,
        pos: usize,
        ids: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let n = ids.len();
        for id in &ids[..n - 1] {
            recv = self.eval_field(dot, id, node, pos, &[], None, recv)?;
        }
        self.eval_field(dot, &ids[n - 1], node, pos, args, fin, recv)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &Arg,
        pos: usize,
        args: &[Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> R<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        match &recv {
            Value::Invalid => {
                if self.opts.missing_key_error {
                    return Err(fail(
                        pos,
                        node,
                        format!("nil data; no entry for key \"{name}\""),
                    ));
                }
                Ok(Value::Invalid)
            }
            Value::Object(o) => {
                let mut vals = Vec::with_capacity(args.len() + 1);
                for a in args {
                    vals.push(self.eval_arg(dot, a)?);
                }
                if let Some(f) = fin {
                    vals.push(f);
                }
                match o.field(name, &vals) {
                    None => Err(fail(
                        pos,
                        node,
                        format!("can't evaluate field {name} in type {}", o.type_name()),
                    )),
                    Some(Err(m)) => Err(fail(pos, node, m)),
                    Some(Ok(v)) => Ok(v),
                }
            }
            Value::Struct { .. } => match recv.struct_field(name) {
                Some(v) => {
                    if has_args {
                        return Err(fail(
                            pos,
                            node,
                            format!("{name} has arguments but cannot be invoked as function"),
                        ));
                    }
                    Ok(v.clone())
                }
                None => Err(fail(
                    pos,
                    node,
                    format!("can't evaluate field {name} in type {}", recv.type_name()),
                )),
            },
            Value::Map { entries, .. } => {
                if has_args {
                    return Err(fail(
                        pos,
                        node,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                match entries.as_ref().and_then(|m| m.get(name)) {
                    Some(v) => Ok(v.clone()),
                    None if self.opts.missing_key_error => Err(fail(
                        pos,
                        node,
                        format!("map has no entry for key \"{name}\""),
                    )),
                    None => Ok(Value::Invalid),
                }
            }
            Value::Nil => Err(fail(
                pos,
                node,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            Value::Time(t) => {
                let mut vals = Vec::with_capacity(args.len() + 1);
                for a in args {
                    vals.push(self.eval_arg(dot, a)?);
                }
                if let Some(f) = fin {
                    vals.push(f);
                }
                time_method(t, name, &vals).map_err(|m| fail(pos, node, m))
            }
            other => {
                // In the raw-JSON fallback every value below the root sits in an
                // `interface{}`, which is the type Go names.
                let raw_elem = self.opts.missing_key_error
                    && matches!(
                        other,
                        Value::Str(_)
                            | Value::Bool(_)
                            | Value::Number(_)
                            | Value::Slice { elem: Ty::Any, .. }
                    );
                let ty = if raw_elem {
                    "interface {}".to_string()
                } else {
                    other.type_name()
                };
                Err(fail(
                    pos,
                    node,
                    format!("can't evaluate field {name} in type {ty}"),
                ))
            }
        }
    }

    fn eval_arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        Ok(match a {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => Value::Nil,
            Arg::Bool(_, b) => Value::Bool(*b),
            Arg::Number(_, v, _) => Value::Int(*v),
            Arg::Str(_, _, s) => Value::Str(s.clone()),
            Arg::Field(p, ids) => self.eval_field_chain(dot, dot.clone(), a, *p, ids, &[], None)?,
            Arg::Var(p, name, ids) => {
                let v = self.var(name);
                if ids.is_empty() {
                    v
                } else {
                    self.eval_field_chain(dot, v, a, *p, ids, &[], None)?
                }
            }
            Arg::Pipe(_, p) => self.eval_pipeline(dot, p)?,
            Arg::Chain(p, node, ids) => {
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, a, *p, ids, &[], None)?
            }
            Arg::Ident(p, name) => {
                let cmd = Cmd {
                    pos: *p,
                    args: vec![a.clone()],
                };
                self.eval_function(dot, *p, name, &cmd, &[], None)?
            }
        })
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        cmd: &Cmd,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let here = |msg: String| fail(cmd.pos, cmd, msg);
        // short-circuit logic
        if name == "and" || name == "or" {
            let total = args.len() + usize::from(fin.is_some());
            if total < 1 {
                return Err(fail(
                    pos,
                    name,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Invalid;
            for a in args {
                last = self.eval_arg(dot, a)?;
                if (name == "and") != last.truth() {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        call_builtin(name, &vals, self.opts.header).map_err(|e| match e {
            CallErr::Ident(m) => fail(pos, name, m),
            CallErr::Arg(i, m) => match args.get(i) {
                Some(a) => fail(a.pos(), a, m),
                None => fail(pos, name, m),
            },
            CallErr::Calling(m) => here(format!("error calling {name}: {m}")),
        })
    }
}

/// The `time.Time` methods templates use.
fn time_method(t: &GoTime, name: &str, args: &[Value]) -> Result<Value, String> {
    let want = |n: usize| {
        if args.len() != n {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        } else {
            Ok(())
        }
    };
    let (y, mo, d, h, mi, s) = t.parts();
    Ok(match name {
        "Format" => {
            want(1)?;
            let Value::Str(layout) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ));
            };
            Value::Str(t.format(layout))
        }
        "String" => {
            want(0)?;
            Value::Str(t.go_string())
        }
        "Unix" => {
            want(0)?;
            Value::Int(t.unix())
        }
        "UnixNano" => {
            want(0)?;
            Value::Int(t.unix().saturating_mul(1_000_000_000) + i64::from(t.nanos))
        }
        "Year" => Value::Int(y),
        "Day" => Value::Int(d),
        "Hour" => Value::Int(h),
        "Minute" => Value::Int(mi),
        "Second" => Value::Int(s),
        "Nanosecond" => Value::Int(i64::from(t.nanos)),
        "YearDay" => Value::Int(t.year_day()),
        "Month" => Value::Str(
            [
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
            ][(mo - 1) as usize]
                .to_string(),
        ),
        "Weekday" => Value::Str(
            [
                "Sunday",
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
            ][t.weekday()]
            .to_string(),
        ),
        "IsZero" => Value::Bool(t.is_zero()),
        "UTC" | "Local" => Value::Time(t.utc()),
        _ => return Err(format!("can't evaluate field {name} in type time.Time")),
    })
}

enum CallErr {
    /// reported at the function name (argument count)
    Ident(String),
    /// reported at argument `i` (type mismatch)
    Arg(usize, String),
    /// `error calling NAME: …`, reported at the whole command
    Calling(String),
}

fn want(name: &str, vals: &[Value], n: usize) -> Result<(), CallErr> {
    if vals.len() != n {
        return Err(CallErr::Ident(format!(
            "wrong number of args for {name}: want {n} got {}",
            vals.len()
        )));
    }
    Ok(())
}

fn arg_str(a: &[Value], i: usize) -> Result<String, CallErr> {
    match &a[i] {
        Value::Str(s) => Ok(s.clone()),
        Value::Invalid => Err(CallErr::Arg(i, "invalid value; expected string".into())),
        other => Err(CallErr::Arg(
            i,
            format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ),
        )),
    }
}

fn arg_int(a: &[Value], i: usize) -> Result<i64, CallErr> {
    match &a[i] {
        Value::Int(n) => Ok(*n),
        Value::Invalid => Err(CallErr::Arg(i, "invalid value; expected int".into())),
        other => Err(CallErr::Arg(
            i,
            format!(
                "wrong type for value; expected int; got {}",
                other.type_name()
            ),
        )),
    }
}

fn arg_strings(a: &[Value], i: usize) -> Result<Vec<String>, CallErr> {
    match &a[i] {
        Value::Slice {
            elem: Ty::String,
            items,
        } => Ok(items
            .iter()
            .flat_map(|v| v.iter())
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()),
        Value::Invalid => Err(CallErr::Arg(i, "invalid value; expected []string".into())),
        other => Err(CallErr::Arg(
            i,
            format!(
                "wrong type for value; expected []string; got {}",
                other.type_name()
            ),
        )),
    }
}

fn call_builtin(name: &str, v: &[Value], header: bool) -> Result<Value, CallErr> {
    if header {
        // docker's HeaderFunctions: keep the header text intact.
        match name {
            "json" | "title" | "lower" | "upper" => {
                want(name, v, 1)?;
                return Ok(Value::Str(arg_str(v, 0)?));
            }
            "split" | "join" => {
                want(name, v, 2)?;
                arg_str(v, 1)?;
                return Ok(Value::Str(arg_str(v, 0)?));
            }
            "truncate" => {
                want(name, v, 2)?;
                arg_int(v, 1)?;
                return Ok(Value::Str(arg_str(v, 0)?));
            }
            _ => {}
        }
    }
    match name {
        "json" => {
            want(name, v, 1)?;
            Ok(Value::Str(v[0].to_json(false)))
        }
        "split" => {
            want(name, v, 2)?;
            let s = arg_str(v, 0)?;
            let sep = arg_str(v, 1)?;
            let parts: Vec<String> = if sep.is_empty() {
                s.chars().map(|c| c.to_string()).collect()
            } else {
                s.split(sep.as_str()).map(str::to_string).collect()
            };
            Ok(Value::string_slice(parts))
        }
        "join" => {
            want(name, v, 2)?;
            let items = arg_strings(v, 0)?;
            Ok(Value::Str(items.join(&arg_str(v, 1)?)))
        }
        "title" => {
            want(name, v, 1)?;
            Ok(Value::Str(go_title(&arg_str(v, 0)?)))
        }
        "lower" => {
            want(name, v, 1)?;
            Ok(Value::Str(arg_str(v, 0)?.to_lowercase()))
        }
        "upper" => {
            want(name, v, 1)?;
            Ok(Value::Str(arg_str(v, 0)?.to_uppercase()))
        }
        "pad" => {
            want(name, v, 3)?;
            let s = arg_str(v, 0)?;
            let (pre, suf) = (arg_int(v, 1)?, arg_int(v, 2)?);
            if s.is_empty() {
                return Ok(Value::Str(s));
            }
            if pre < 0 || suf < 0 {
                return Err(CallErr::Calling("strings: negative Repeat count".into()));
            }
            Ok(Value::Str(format!(
                "{}{s}{}",
                " ".repeat(pre as usize),
                " ".repeat(suf as usize)
            )))
        }
        "truncate" => {
            want(name, v, 2)?;
            let s = arg_str(v, 0)?;
            let n = arg_int(v, 1)?;
            if (s.len() as i64) < n {
                return Ok(Value::Str(s));
            }
            let n = n.max(0) as usize;
            Ok(Value::Str(
                String::from_utf8_lossy(&s.as_bytes()[..n]).into_owned(),
            ))
        }
        "not" => {
            want(name, v, 1)?;
            Ok(Value::Bool(!v[0].truth()))
        }
        "len" => {
            want(name, v, 1)?;
            match &v[0] {
                Value::Str(s) | Value::Number(s) => Ok(Value::Int(s.len() as i64)),
                Value::Slice { items, .. } => {
                    Ok(Value::Int(items.as_ref().map_or(0, |i| i.len()) as i64))
                }
                Value::Map { entries, .. } => {
                    Ok(Value::Int(entries.as_ref().map_or(0, |m| m.len()) as i64))
                }
                Value::Invalid | Value::Nil => Err(CallErr::Calling("len of nil pointer".into())),
                other => Err(CallErr::Calling(format!(
                    "len of type {}",
                    other.type_name()
                ))),
            }
        }
        "index" => {
            if v.is_empty() {
                return Err(CallErr::Ident(
                    "wrong number of args for index: want at least 1 got 0".into(),
                ));
            }
            let mut item = v[0].clone();
            if matches!(item, Value::Invalid | Value::Nil) {
                return Err(CallErr::Calling("index of untyped nil".into()));
            }
            for ix in &v[1..] {
                item = match (&item, ix) {
                    (Value::Slice { items, .. }, Value::Int(i)) => {
                        let len = items.as_ref().map_or(0, |x| x.len());
                        if *i < 0 || *i as usize > len {
                            return Err(CallErr::Calling(format!("index out of range: {i}")));
                        }
                        if *i as usize == len {
                            return Err(CallErr::Calling(
                                "reflect: slice index out of range".into(),
                            ));
                        }
                        items
                            .as_ref()
                            .map(|x| x[*i as usize].clone())
                            .unwrap_or(Value::Nil)
                    }
                    (Value::Map { entries, elem }, Value::Str(k)) => entries
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .cloned()
                        .unwrap_or_else(|| elem.zero()),
                    (Value::Str(s), Value::Int(i)) => {
                        if *i < 0 || *i as usize > s.len() {
                            return Err(CallErr::Calling(format!("index out of range: {i}")));
                        }
                        if *i as usize == s.len() {
                            return Err(CallErr::Calling(
                                "reflect: string index out of range".into(),
                            ));
                        }
                        Value::Int(i64::from(s.as_bytes()[*i as usize]))
                    }
                    (Value::Nil, _) => return Err(CallErr::Calling("index of nil pointer".into())),
                    (Value::Map { .. }, other) => {
                        return Err(CallErr::Calling(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        )))
                    }
                    (Value::Slice { .. } | Value::Str(_), Value::Invalid | Value::Nil) => {
                        return Err(CallErr::Calling("cannot index slice/array with nil".into()))
                    }
                    (Value::Slice { .. } | Value::Str(_), other) => {
                        return Err(CallErr::Calling(format!(
                            "cannot index slice/array with type {}",
                            other.type_name()
                        )))
                    }
                    (other, _) => {
                        return Err(CallErr::Calling(format!(
                            "can't index item of type {}",
                            other.type_name()
                        )))
                    }
                };
            }
            Ok(item)
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, v),
        "print" => Ok(Value::Str(sprint(v))),
        "println" => {
            let parts: Vec<String> = v.iter().map(fmt_arg).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            if v.is_empty() {
                return Err(CallErr::Ident(
                    "wrong number of args for printf: want at least 1 got 0".into(),
                ));
            }
            let f = arg_str(v, 0)?;
            Ok(Value::Str(sprintf(&f, &v[1..])))
        }
        "urlquery" => Ok(Value::Str(query_escape(&sprint(v)))),
        "html" => Ok(Value::Str(
            sprint(v)
                .replace('&', "&amp;")
                .replace('\'', "&#39;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\0', "\u{FFFD}"),
        )),
        other => Err(CallErr::Ident(format!(
            "function \"{other}\" is not supported by vswitch"
        ))),
    }
}

fn fmt_arg(v: &Value) -> String {
    match v {
        Value::Invalid => "<nil>".into(),
        v => v.go_fmt_string(),
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
fn sprint(v: &[Value]) -> String {
    let mut out = String::new();
    let is_str = |x: &Value| matches!(x, Value::Str(_) | Value::Number(_));
    for (i, x) in v.iter().enumerate() {
        if i > 0 && !is_str(x) && !is_str(&v[i - 1]) {
            out.push(' ');
        }
        out.push_str(&fmt_arg(x));
    }
    out
}

/// A small `fmt.Sprintf`: `%v %s %d %q %t %%`.
fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = f.chars();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(ai) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        ai += 1;
        match (verb, a) {
            ('v', a) => out.push_str(&fmt_arg(a)),
            ('s', Value::Str(s) | Value::Number(s)) => out.push_str(s),
            ('s', a @ (Value::Slice { .. } | Value::Map { .. } | Value::Struct { .. })) => {
                out.push_str(&a.go_fmt_string())
            }
            ('d', Value::Int(i)) => out.push_str(&i.to_string()),
            ('t', Value::Bool(b)) => out.push_str(&b.to_string()),
            ('q', Value::Str(s)) => out.push_str(&format!("{s:?}")),
            (verb, a) => out.push_str(&format!("%!{verb}({}={})", a.type_name(), fmt_arg(a))),
        }
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), fmt_arg(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn compare(name: &str, v: &[Value]) -> Result<Value, CallErr> {
    #[derive(PartialEq, PartialOrd)]
    enum K<'a> {
        B(bool),
        I(i64),
        S(&'a str),
    }
    fn basic(x: &Value) -> Result<K<'_>, CallErr> {
        match x {
            Value::Bool(b) => Ok(K::B(*b)),
            Value::Int(i) => Ok(K::I(*i)),
            Value::Str(s) | Value::Number(s) => Ok(K::S(s)),
            _ => Err(CallErr::Calling("invalid type for comparison".into())),
        }
    }
    let same_kind = |a: &K, b: &K| {
        matches!(
            (a, b),
            (K::B(_), K::B(_)) | (K::I(_), K::I(_)) | (K::S(_), K::S(_))
        )
    };
    if name == "eq" {
        if v.len() < 2 {
            return Err(CallErr::Calling("missing argument for comparison".into()));
        }
        let a = basic(&v[0])?;
        for x in &v[1..] {
            let b = basic(x)?;
            if !same_kind(&a, &b) {
                return Err(CallErr::Calling("incompatible types for comparison".into()));
            }
            if a == b {
                return Ok(Value::Bool(true));
            }
        }
        return Ok(Value::Bool(false));
    }
    want(name, v, 2)?;
    let (a, b) = (basic(&v[0])?, basic(&v[1])?);
    if !same_kind(&a, &b) {
        return Err(CallErr::Calling("incompatible types for comparison".into()));
    }
    if matches!(a, K::B(_)) && name != "ne" {
        return Err(CallErr::Calling("invalid type for comparison".into()));
    }
    Ok(Value::Bool(match name {
        "ne" => a != b,
        "lt" => a < b,
        "le" => a <= b,
        "gt" => a > b,
        _ => a >= b,
    }))
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        };
    }
    out
}

/// Convenience: a `map[string]string` value from pairs (tests and callers).
pub fn string_map_value(pairs: &[(&str, &str)]) -> Value {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Value::string_map(&m)
}

/// Convenience: raw JSON text decoded into the `map[string]any` world.
pub fn json_value(text: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(super::goval::from_json_any(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(src: &str, json: &str) -> Result<String, String> {
        Template::render(src, &json_value(json).unwrap())
    }

    #[test]
    fn literals_fields_and_missing() {
        let d = r#"{"Name":"n","IPAM":{"Driver":"default","Config":[{"Subnet":"10.0.0.0/24"},{"Subnet":"fd00::/64","Gateway":"fd00::1"}]},"Labels":{"b":"2","a":"1"},"N":null,"E":[]}"#;
        assert_eq!(raw("x{{.Name}}y", d).unwrap(), "xny");
        assert_eq!(raw("{{.IPAM.Driver}}", d).unwrap(), "default");
        assert_eq!(
            raw("{{range .IPAM.Config}}{{.Subnet}},{{end}}", d).unwrap(),
            "10.0.0.0/24,fd00::/64,"
        );
        assert_eq!(raw("{{.Labels}}", d).unwrap(), "map[a:1 b:2]");
        assert_eq!(
            raw("{{.E}}|{{.N}}|{{.Nope}}", d).unwrap(),
            "[]|<no value>|<no value>"
        );
        assert_eq!(raw("{{index .Labels \"a\"}}", d).unwrap(), "1");
        assert_eq!(raw("{{json .Labels}}", d).unwrap(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            raw("{{json .IPAM.Config}}", d).unwrap(),
            r#"[{"Subnet":"10.0.0.0/24"},{"Gateway":"fd00::1","Subnet":"fd00::/64"}]"#
        );
        assert_eq!(
            raw("{{\"a\\tb\"}} {{`r\\n`}} {{3}} {{true}} {{'a'}}", d).unwrap(),
            "a\tb r\\n 3 true 97"
        );
    }

    #[test]
    fn control_flow_and_vars() {
        let d = r#"{"L":{"x":"1","y":"2"},"S":["a","b","c"],"T":true,"F":false}"#;
        assert_eq!(
            raw("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", d).unwrap(),
            "x=1;y=2;"
        );
        assert_eq!(
            raw(
                "{{range $i, $e := .S}}{{if eq $i 1}}{{continue}}{{end}}{{$e}}{{end}}",
                d
            )
            .unwrap(),
            "ac"
        );
        assert_eq!(raw("{{range .S}}{{.}}{{break}}{{end}}", d).unwrap(), "a");
        assert_eq!(
            raw("{{if .F}}a{{else if .T}}b{{else}}c{{end}}", d).unwrap(),
            "b"
        );
        assert_eq!(
            raw("{{with .L}}{{.x}}{{end}}{{with .Q}}q{{else}}none{{end}}", d).unwrap(),
            "1none"
        );
        assert_eq!(raw("{{$x := .S}}{{len $x}} {{$.T}}", d).unwrap(), "3 true");
        assert_eq!(
            raw("{{range .Q}}x{{else}}empty{{end}}", d).unwrap(),
            "empty"
        );
        assert_eq!(raw("  {{- .T -}}  \n x", d).unwrap(), "truex");
        assert_eq!(raw("a{{/* c */}}b{{- /* c */ -}} c", d).unwrap(), "abc");
        assert_eq!(
            raw("{{.T | not}} {{and .T .F}} {{or .F \"z\"}}", d).unwrap(),
            "false false z"
        );
        assert_eq!(
            raw("{{join .S \",\"}}", d).unwrap_err(),
            "template: :1:7: executing \"\" at <.S>: wrong type for value; expected []string; got []interface {}"
        );
        assert_eq!(
            raw("{{upper \"ab\"}} {{title \"ab cd\"}} {{pad \"x\" 1 2}}| {{truncate \"abcdef\" 3}} {{split \"a:b\" \":\"}} {{printf \"%s-%d\" \"a\" 3}} {{print 1 2 \"x\"}}", "{}").unwrap(),
            "AB Ab Cd  x  | abc [a b] a-3 1 2x"
        );
    }

    #[test]
    fn errors_like_go() {
        assert_eq!(
            Template::parse("{{.Foo").unwrap_err(),
            "template: :1: unclosed action"
        );
        assert_eq!(
            Template::parse("{{foo}}").unwrap_err(),
            "template: :1: function \"foo\" not defined"
        );
        assert_eq!(
            Template::parse("{{end}}").unwrap_err(),
            "template: :1: unexpected {{end}}"
        );
        assert_eq!(
            Template::parse("{{range .X}}").unwrap_err(),
            "template: :1: unexpected EOF"
        );
        assert_eq!(
            Template::parse("{{$x}}").unwrap_err(),
            "template: :1: undefined variable \"$x\""
        );
        let t = Template::parse("{{.Foo}}").unwrap();
        let opts = ExecOptions {
            missing_key_error: true,
            header: false,
        };
        assert_eq!(
            t.execute(&json_value("{}").unwrap(), &opts)
                .unwrap_err()
                .message,
            "template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\""
        );
        assert_eq!(
            raw("ab{{.A.B}}", r#"{"A":"s"}"#).unwrap_err(),
            "template: :1:6: executing \"\" at <.A.B>: can't evaluate field B in type string"
        );
        let t = Template::parse("{{.Name.Foo}}").unwrap();
        assert_eq!(
            t.execute(&json_value(r#"{"Name":"x"}"#).unwrap(), &opts).unwrap_err().message,
            "template: :1:7: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type interface {}"
        );
        assert_eq!(
            raw("{{index .A 5}}", r#"{"A":[1]}"#).unwrap_err(),
            "template: :1:2: executing \"\" at <index .A 5>: error calling index: index out of range: 5"
        );
        let e = Template::parse("x\n{{.A}}")
            .unwrap()
            .execute(&Value::Str("s".into()), &ExecOptions::default())
            .unwrap_err();
        assert_eq!(
            e.message,
            "template: :2:2: executing \"\" at <.A>: can't evaluate field A in type string"
        );
        assert_eq!(e.partial, "x\n");
    }

    #[test]
    fn header_functions() {
        let h = string_map_value(&[("Name", "NAME")]);
        let t = Template::parse("{{json .Name}}\t{{upper .Name}}\t{{.Other}}").unwrap();
        let opts = ExecOptions {
            missing_key_error: false,
            header: true,
        };
        assert_eq!(t.execute(&h, &opts).unwrap(), "NAME\tNAME\t<no value>");
    }
}
