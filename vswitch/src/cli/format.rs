//! docker's `formatter.Context`: renders rows with a `--format` template, as a table
//! (`table …`: header row + Go tab writer), as JSON lines (`json`) or as plain lines.
//! Shared by every listing command (`network ls` now; `ps` later).

use std::collections::BTreeMap;

use super::gojson;
use super::goval::{Object, Value};
use super::tabwriter::format_table;
use super::template::{ExecOptions, Template};

/// `formatter.Format.IsTable`
pub fn is_table(format: &str) -> bool {
    format.starts_with("table")
}

/// docker's `preFormat`: strip `table`, map `json`, trim spaces, expand `\t` / `\n`.
pub fn final_format(format: &str) -> String {
    let f = if is_table(format) {
        &format["table".len()..]
    } else if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    f.trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n")
}

/// Renders `rows` with `format`; `header` is the table header context. Errors are the
/// text docker prints (`template parsing error: …`).
pub fn write_rows(format: &str, rows: &[Value], header: &Value) -> Result<String, String> {
    let tmpl = Template::parse(&final_format(format))
        .map_err(|e| format!("template parsing error: {e}"))?;
    let mut buf = String::new();
    for row in rows {
        let s = tmpl
            .execute(row, &ExecOptions::default())
            .map_err(|e| format!("template parsing error: {}", e.message))?;
        buf.push_str(&s);
        buf.push('\n');
    }
    if !is_table(format) {
        return Ok(buf);
    }
    let opts = ExecOptions {
        missing_key_error: false,
        header: true,
    };
    // docker ignores header execution errors and keeps what was written.
    let mut text = match tmpl.execute(header, &opts) {
        Ok(h) => h,
        Err(e) => e.partial,
    };
    text.push('\n');
    text.push_str(&buf);
    Ok(format_table(&text))
}

/// docker's `SubHeaderContext`: a `map[string]string` of column headers with a `Label`
/// method (`{{.Label "com.example.x"}}` → header `x`).
pub struct HeaderContext(pub BTreeMap<String, String>);

impl HeaderContext {
    pub fn new(pairs: &[(&str, &str)]) -> HeaderContext {
        HeaderContext(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn value(self) -> Value {
        Value::Object(std::rc::Rc::new(self))
    }
}

impl Object for HeaderContext {
    fn type_name(&self) -> String {
        "formatter.SubHeaderContext".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name == "Label" {
            if args.len() != 1 {
                return Some(Err(format!(
                    "wrong number of args for Label: want 1 got {}",
                    args.len()
                )));
            }
            let Value::Str(n) = &args[0] else {
                return Some(Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                )));
            };
            let last = n.rsplit('.').next().unwrap_or("");
            return Some(Ok(Value::Str(last.replace(['-', '_'], " "))));
        }
        if !args.is_empty() {
            return Some(Err(format!("{name} is not a method but has arguments")));
        }
        Some(Ok(self
            .0
            .get(name)
            .map(|v| Value::Str(v.clone()))
            .unwrap_or(Value::Invalid)))
    }

    fn to_json(&self) -> String {
        gojson::string_map(&self.0)
    }

    fn go_fmt(&self) -> String {
        Value::string_map(&self.0).go_fmt_string()
    }
}

/// `stringid.TruncateID`: drop an `algo:` prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            final_format("table {{.ID}}\\t{{.Name}}"),
            "{{.ID}}\t{{.Name}}"
        );
        assert_eq!(final_format("json"), "{{json .}}");
        assert_eq!(final_format("  table {{.Name}}  "), "table {{.Name}}");
        assert_eq!(final_format("tablexx {{.Name}}"), "xx {{.Name}}");
        assert_eq!(truncate_id("sha256:aaaabbbbccccddddeeee"), "aaaabbbbcccc");
        assert_eq!(truncate_id("abc"), "abc");
    }
}
