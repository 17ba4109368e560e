//! Values as Go's `text/template` and `fmt` see them.
//!
//! The docker CLI runs `--format` templates on Go structs decoded from the daemon's JSON
//! (so missing fields are zero values and struct fields print in declaration order) and,
//! when that fails, on the raw JSON decoded into `map[string]any`. [`Ty`] describes the Go
//! types (a static schema per API type); [`decode`] produces the typed view and
//! [`from_json_any`] the raw one. [`Value::go_fmt`] prints like `fmt.Print` and
//! [`Value::to_json`] marshals like `encoding/json`.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use super::gojson;
use super::gotime::GoTime;

/// A Go type, enough to decode JSON into it and print it like Go does.
#[derive(Debug)]
pub enum Ty {
    String,
    Bool,
    Int,
    Time,
    /// `interface{}`
    Any,
    Struct(&'static StructTy),
    /// `map[string]T`
    Map(&'static Ty),
    /// `[]T`
    Slice(&'static Ty),
}

/// A Go struct type: `name` is how reflect prints it (`network.Inspect`).
#[derive(Debug)]
pub struct StructTy {
    pub name: &'static str,
    pub fields: &'static [FieldTy],
}

/// One struct field: Go name (template access), JSON key, `omitempty`, type.
#[derive(Debug)]
pub struct FieldTy {
    pub name: &'static str,
    pub json: &'static str,
    pub omitempty: bool,
    pub ty: Ty,
}

impl FieldTy {
    pub const fn new(name: &'static str, ty: Ty) -> FieldTy {
        FieldTy {
            name,
            json: name,
            omitempty: false,
            ty,
        }
    }

    pub const fn json(mut self, json: &'static str) -> FieldTy {
        self.json = json;
        self
    }

    pub const fn omitempty(mut self) -> FieldTy {
        self.omitempty = true;
        self
    }
}

impl Ty {
    /// The type as reflect prints it (`map[string]string`, `[]network.IPAMConfig`).
    pub fn go_name(&self) -> String {
        match self {
            Ty::String => "string".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Time => "time.Time".into(),
            Ty::Any => "interface {}".into(),
            Ty::Struct(s) => s.name.into(),
            Ty::Map(e) => format!("map[string]{}", e.go_name()),
            Ty::Slice(e) => format!("[]{}", e.go_name()),
        }
    }

    /// Go's zero value of the type.
    pub fn zero(&'static self) -> Value {
        match self {
            Ty::String => Value::Str(String::new()),
            Ty::Bool => Value::Bool(false),
            Ty::Int => Value::Int(0),
            Ty::Time => Value::Time(GoTime::ZERO),
            Ty::Any => Value::Nil,
            Ty::Struct(s) => Value::Struct {
                ty: s,
                fields: Rc::new(s.fields.iter().map(|f| f.ty_zero()).collect()),
            },
            Ty::Map(e) => Value::Map {
                elem: e,
                entries: None,
            },
            Ty::Slice(e) => Value::Slice {
                elem: e,
                items: None,
            },
        }
    }
}

impl FieldTy {
    fn ty_zero(&'static self) -> Value {
        self.ty.zero()
    }
}

/// A template-visible object with methods (docker's formatter contexts, e.g. the
/// `network ls` row with `.ID`, `.Label "k"` …).
pub trait Object {
    /// How reflect names the type in errors (`*network.networkContext`).
    fn type_name(&self) -> String;
    /// Field or method `name` called with `args`; `None` when there is no such member.
    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>>;
    /// `json .` of the object (compact JSON).
    fn to_json(&self) -> String;
    /// `fmt.Print` of the object.
    fn go_fmt(&self) -> String;
}

/// A Go value.
#[derive(Clone)]
pub enum Value {
    /// reflect's invalid value: a missing map entry (prints `<no value>`).
    Invalid,
    /// A nil interface (`<nil>` inside containers, `<no value>` at top level).
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    /// `json.Number` (raw JSON numbers, printed verbatim).
    Number(String),
    Time(GoTime),
    /// `items: None` is a nil slice.
    Slice {
        elem: &'static Ty,
        items: Option<Rc<Vec<Value>>>,
    },
    /// `entries: None` is a nil map.
    Map {
        elem: &'static Ty,
        entries: Option<Rc<BTreeMap<String, Value>>>,
    },
    Struct {
        ty: &'static StructTy,
        fields: Rc<Vec<Value>>,
    },
    Object(Rc<dyn Object>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({}: {})", self.type_name(), self.go_fmt_string())
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A `map[string]string` value.
    pub fn string_map(m: &BTreeMap<String, String>) -> Value {
        Value::Map {
            elem: &Ty::String,
            entries: Some(Rc::new(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                    .collect(),
            )),
        }
    }

    /// A `[]string` value.
    pub fn string_slice(v: Vec<String>) -> Value {
        Value::Slice {
            elem: &Ty::String,
            items: Some(Rc::new(v.into_iter().map(Value::Str).collect())),
        }
    }

    /// The dynamic type as reflect prints it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Invalid => "<invalid>".into(),
            Value::Nil => "interface {}".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Str(_) => "string".into(),
            Value::Number(_) => "json.Number".into(),
            Value::Time(_) => "time.Time".into(),
            Value::Slice { elem, .. } => format!("[]{}", elem.go_name()),
            Value::Map { elem, .. } => format!("map[string]{}", elem.go_name()),
            Value::Struct { ty, .. } => ty.name.into(),
            Value::Object(o) => o.type_name(),
        }
    }

    /// A struct field by Go name.
    pub fn struct_field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct { ty, fields } => ty
                .fields
                .iter()
                .position(|f| f.name == name)
                .map(|i| &fields[i]),
            _ => None,
        }
    }

    /// The string inside `Str` / `Number`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Number(s) => Some(s),
            _ => None,
        }
    }

    /// Go template truthiness.
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) | Value::Number(s) => !s.is_empty(),
            Value::Slice { items, .. } => items.as_ref().is_some_and(|v| !v.is_empty()),
            Value::Map { entries, .. } => entries.as_ref().is_some_and(|m| !m.is_empty()),
            Value::Time(_) | Value::Struct { .. } | Value::Object(_) => true,
        }
    }

    /// `fmt.Print(v)` as a string.
    pub fn go_fmt_string(&self) -> String {
        let mut s = String::new();
        self.go_fmt(&mut s, true);
        s
    }

    /// `fmt.Print` formatting (`%v`). `methods` is false inside unexported fields, where
    /// `fmt` cannot call `String()` (a `time.Time` then prints as its raw struct).
    pub fn go_fmt(&self, out: &mut String, methods: bool) {
        match self {
            Value::Invalid => out.push_str("<invalid reflect.Value>"),
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Str(s) | Value::Number(s) => out.push_str(s),
            Value::Time(t) => {
                if methods {
                    out.push_str(&t.go_string())
                } else {
                    out.push_str(&t.internal_repr())
                }
            }
            Value::Slice { items, .. } => {
                out.push('[');
                for (i, v) in items.iter().flat_map(|v| v.iter()).enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.go_fmt(out, methods);
                }
                out.push(']');
            }
            Value::Map { entries, .. } => {
                out.push_str("map[");
                for (i, (k, v)) in entries.iter().flat_map(|m| m.iter()).enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.go_fmt(out, methods);
                }
                out.push(']');
            }
            Value::Struct { fields, .. } => {
                out.push('{');
                for (i, v) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.go_fmt(out, methods);
                }
                out.push('}');
            }
            Value::Object(o) => out.push_str(&o.go_fmt()),
        }
    }

    /// `encoding/json` marshalling (`escape_html` as `Encoder.SetEscapeHTML`).
    pub fn to_json(&self, escape_html: bool) -> String {
        let mut s = String::new();
        self.write_json(&mut s, escape_html);
        s
    }

    fn write_json(&self, out: &mut String, html: bool) {
        match self {
            Value::Invalid | Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Str(s) => gojson::write_string(out, s, html),
            Value::Number(n) => out.push_str(if n.is_empty() { "0" } else { n }),
            Value::Time(t) => gojson::write_string(out, &t.rfc3339_nano(), html),
            Value::Slice { items: None, .. } | Value::Map { entries: None, .. } => {
                out.push_str("null")
            }
            Value::Slice { items: Some(v), .. } => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_json(out, html);
                }
                out.push(']');
            }
            Value::Map {
                entries: Some(m), ..
            } => {
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    gojson::write_string(out, k, html);
                    out.push(':');
                    x.write_json(out, html);
                }
                out.push('}');
            }
            Value::Struct { ty, fields } => {
                out.push('{');
                let mut first = true;
                for (f, x) in ty.fields.iter().zip(fields.iter()) {
                    if f.omitempty && x.is_empty_value() {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    gojson::write_string(out, f.json, html);
                    out.push(':');
                    x.write_json(out, html);
                }
                out.push('}');
            }
            Value::Object(o) => out.push_str(&o.to_json()),
        }
    }

    /// `encoding/json`'s `isEmptyValue` (for `omitempty`).
    fn is_empty_value(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => true,
            Value::Bool(b) => !*b,
            Value::Int(i) => *i == 0,
            Value::Str(s) | Value::Number(s) => s.is_empty(),
            Value::Slice { items, .. } => items.as_ref().is_none_or(|v| v.is_empty()),
            Value::Map { entries, .. } => entries.as_ref().is_none_or(|m| m.is_empty()),
            Value::Time(_) | Value::Struct { .. } | Value::Object(_) => false,
        }
    }
}

/// JSON → `map[string]any` world (`json.Decoder` with `UseNumber`).
pub fn from_json_any(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(n.to_string()),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::Slice {
            elem: &Ty::Any,
            items: Some(Rc::new(a.iter().map(from_json_any).collect())),
        },
        serde_json::Value::Object(o) => Value::Map {
            elem: &Ty::Any,
            entries: Some(Rc::new(
                o.iter()
                    .map(|(k, v)| (k.clone(), from_json_any(v)))
                    .collect(),
            )),
        },
    }
}

fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(_) => "bool".into(),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(_) => "string".into(),
        serde_json::Value::Array(_) => "array".into(),
        serde_json::Value::Object(_) => "object".into(),
    }
}

/// Decodes JSON into the Go type `ty` like `json.Unmarshal` (unknown keys ignored, keys
/// matched exactly or else case-insensitively, `null` leaves the zero value). Errors
/// read like Go's: `json: cannot unmarshal number into Go struct field Inspect.Name of
/// type string`, or the time parse error of a bad `Created`.
pub fn decode(ty: &'static Ty, v: &serde_json::Value) -> Result<Value, String> {
    let mut path = Vec::new();
    decode_at(ty, v, &mut path, None)
}

fn decode_at(
    ty: &'static Ty,
    v: &serde_json::Value,
    path: &mut Vec<&'static str>,
    top: Option<&'static str>,
) -> Result<Value, String> {
    use serde_json::Value as J;
    if v.is_null() {
        return Ok(ty.zero());
    }
    let mismatch = |path: &Vec<&'static str>| {
        let kind = match v {
            J::Number(_) => "number".to_string(),
            other => json_kind(other),
        };
        match top {
            Some(t) => format!(
                "json: cannot unmarshal {kind} into Go struct field {}.{} of type {}",
                t.rsplit('.').next().unwrap_or(t),
                path.join("."),
                ty.go_name()
            ),
            None => format!(
                "json: cannot unmarshal {kind} into Go value of type {}",
                ty.go_name()
            ),
        }
    };
    match (ty, v) {
        (Ty::String, J::String(s)) => Ok(Value::Str(s.clone())),
        (Ty::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (Ty::Int, J::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => Err(match top {
                Some(t) => format!(
                    "json: cannot unmarshal number {n} into Go struct field {}.{} of type int",
                    t.rsplit('.').next().unwrap_or(t),
                    path.join(".")
                ),
                None => format!("json: cannot unmarshal number {n} into Go value of type int"),
            }),
        },
        (Ty::Time, J::String(s)) => GoTime::parse_rfc3339(s).map(Value::Time),
        (Ty::Time, _) => Err("Time.UnmarshalJSON: input is not a JSON string".into()),
        (Ty::Any, other) => Ok(from_json_any(other)),
        (Ty::Map(elem), J::Object(o)) => {
            let mut m = BTreeMap::new();
            for (k, x) in o {
                m.insert(k.clone(), decode_at(elem, x, path, top)?);
            }
            Ok(Value::Map {
                elem,
                entries: Some(Rc::new(m)),
            })
        }
        (Ty::Slice(elem), J::Array(a)) => {
            let items = a
                .iter()
                .map(|x| decode_at(elem, x, path, top))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Slice {
                elem,
                items: Some(Rc::new(items)),
            })
        }
        (Ty::Struct(st), J::Object(o)) => {
            let top = top.or(Some(st.name));
            let mut fields = Vec::with_capacity(st.fields.len());
            for f in st.fields {
                let found = o.get(f.json).or_else(|| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(f.json))
                        .map(|(_, x)| x)
                });
                match found {
                    Some(x) => {
                        path.push(f.json);
                        let r = decode_at(&f.ty, x, path, top);
                        path.pop();
                        fields.push(r?);
                    }
                    None => fields.push(f.ty.zero()),
                }
            }
            Ok(Value::Struct {
                ty: st,
                fields: Rc::new(fields),
            })
        }
        _ => Err(mismatch(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static INNER: StructTy = StructTy {
        name: "pkg.Inner",
        fields: &[
            FieldTy::new("A", Ty::String).omitempty(),
            FieldTy::new("M", Ty::Map(&Ty::String))
                .json("Mm")
                .omitempty(),
        ],
    };
    static OUTER: StructTy = StructTy {
        name: "pkg.Outer",
        fields: &[
            FieldTy::new("Name", Ty::String),
            FieldTy::new("ID", Ty::String).json("Id"),
            FieldTy::new("T", Ty::Time),
            FieldTy::new("L", Ty::Slice(&Ty::Struct(&INNER))),
            FieldTy::new("N", Ty::Int),
        ],
    };
    static OUTER_TY: Ty = Ty::Struct(&OUTER);

    #[test]
    fn typed_decode_print_marshal() {
        let j: serde_json::Value = serde_json::from_str(
            r#"{"id":"x","Name":"n","L":[{"Mm":{"b":"2","a":"1"}},{"A":"z"}],"Extra":1}"#,
        )
        .unwrap();
        let v = decode(&OUTER_TY, &j).unwrap();
        assert_eq!(
            v.go_fmt_string(),
            "{n x 0001-01-01 00:00:00 +0000 UTC [{ map[a:1 b:2]} {z map[]}] 0}"
        );
        assert_eq!(
            v.to_json(false),
            r#"{"Name":"n","Id":"x","T":"0001-01-01T00:00:00Z","L":[{"Mm":{"a":"1","b":"2"}},{"A":"z"}],"N":0}"#
        );
        let j: serde_json::Value = serde_json::from_str(r#"{"Name":5}"#).unwrap();
        assert_eq!(
            decode(&OUTER_TY, &j).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Outer.Name of type string"
        );
        let j: serde_json::Value = serde_json::from_str(r#"{"T":""}"#).unwrap();
        assert!(decode(&OUTER_TY, &j)
            .unwrap_err()
            .starts_with("parsing time \"\" as"));
    }
}
