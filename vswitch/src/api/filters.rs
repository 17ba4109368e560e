//! The `filters` query parameter of list and prune, with moby's semantics: values of one key
//! OR together, different keys AND.

use crate::model::{Error, Network, State, PREDEFINED_NAMES};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Decode `{"key":{"value":true}}` (current) or `{"key":["value"]}` (legacy).
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else {
            return Ok(Filters::default());
        };
        let bad = || Error::InvalidParameter("invalid filter".into());
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad())?;
        let obj = v.as_object().ok_or_else(bad)?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad()),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn validate(&self, allowed: &[&str]) -> Result<(), Error> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(Error::InvalidParameter(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }
}

/// moby matches name and id filters exactly or as an unanchored Go regexp.
fn matches_pattern(value: &str, pattern: &str) -> bool {
    value == pattern
        || regex::Regex::new(pattern)
            .map(|re| re.is_match(value))
            .unwrap_or(false)
}

/// `label=key` (present) or `label=key=value` (equal).
pub fn label_matches(labels: &BTreeMap<String, String>, spec: &str) -> bool {
    match spec.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(spec),
    }
}

pub const NETWORK_LIST_FILTERS: &[&str] =
    &["driver", "id", "label", "name", "scope", "type", "dangling"];

/// Apply the `GET /networks` filters.
pub fn filter_networks<'a>(state: &'a State, f: &Filters) -> Result<Vec<&'a Network>, Error> {
    f.validate(NETWORK_LIST_FILTERS)?;
    for t in f.get("type") {
        if t != "builtin" && t != "custom" {
            return Err(Error::Internal(format!("invalid filter: 'type'='{t}'")));
        }
    }
    let dangling = match f.get("dangling") {
        [] => None,
        [one] => match one.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                return Err(Error::InvalidParameter(
                    "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")".into(),
                ))
            }
        },
        _ => {
            return Err(Error::InvalidParameter(
                "got more than one value for filter key \"dangling\"".into(),
            ))
        }
    };
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    Ok(state
        .networks()
        .filter(|n| {
            let builtin = n.predefined || PREDEFINED_NAMES.contains(&n.name.as_str());
            any("name", &|p| matches_pattern(&n.name, p))
                && any("id", &|p| matches_pattern(&n.id, p))
                && any("driver", &|d| n.driver.as_str() == d)
                && any("scope", &|s| n.scope == s)
                && any("type", &|t| (t == "builtin") == builtin)
                && f.get("label").iter().all(|l| label_matches(&n.labels, l))
                && dangling.is_none_or(|d| {
                    let unused = !builtin && state.endpoints_of(&n.id).is_empty();
                    unused == d
                })
        })
        .collect())
}

pub const PRUNE_FILTERS: &[&str] = &["until", "label", "label!"];

/// Whether a network passes prune's filters (`until`, `label`, `label!`).
pub fn prune_selects(n: &Network, f: &Filters, until: Option<i64>) -> bool {
    let created = crate::util::parse_rfc3339(&n.created).unwrap_or(0);
    until.is_none_or(|u| created < u)
        && f.get("label").iter().all(|l| label_matches(&n.labels, l))
        && !f.get("label!").iter().any(|l| label_matches(&n.labels, l))
}

/// Parse prune's `until`: a Unix timestamp, an RFC 3339 time or a Go duration before now.
pub fn parse_until(f: &Filters) -> Result<Option<i64>, Error> {
    match f.get("until") {
        [] => Ok(None),
        [u] => {
            if let Ok(ts) = u.parse::<f64>() {
                return Ok(Some(ts as i64));
            }
            if let Some(ts) = crate::util::parse_rfc3339(u) {
                return Ok(Some(ts));
            }
            if let Some(d) = crate::util::parse_go_duration(u) {
                return Ok(Some(crate::util::unix_now() - d));
            }
            Err(Error::InvalidParameter(format!(
                "failed to parse value {u:?} of filter until"
            )))
        }
        _ => Err(Error::InvalidParameter(
            "more than one until filter specified".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_encodings() {
        let f = Filters::parse(Some(r#"{"type":{"custom":true}}"#)).unwrap();
        assert_eq!(f.get("type"), &["custom".to_string()]);
        let f = Filters::parse(Some(r#"{"name":["a","b"]}"#)).unwrap();
        assert_eq!(f.get("name").len(), 2);
        assert!(Filters::parse(Some("{")).is_err());
        assert!(Filters::parse(None).unwrap().0.is_empty());
    }

    #[test]
    fn patterns() {
        assert!(matches_pattern("158bd6e7", "158"));
        assert!(matches_pattern("bridge", "^bridge$"));
        assert!(!matches_pattern("mybridge", "^bridge$"));
        assert!(!matches_pattern("x", "("));
    }
}
