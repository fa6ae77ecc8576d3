//! Lambda event filtering (`FilterCriteria`): AWS's pattern syntax, applied to Kinesis records as the event
//! source mapping does.
//!
//! A record is matched as `{"partitionKey", "sequenceNumber", "approximateArrivalTimestamp",
//! "kinesisSchemaVersion", "data"}`, where `data` is the record's bytes parsed as JSON (a record whose data is not
//! JSON matches only patterns that do not look into `data`). A filter list matches when any of its patterns
//! matches (OR, as AWS combines up to five filters); within a pattern every key must match (AND).
//!
//! Supported, as documented by AWS: exact strings, numbers, booleans and `null`; the empty string; several values
//! (OR); `prefix`, `suffix`, `equals-ignore-case`; `anything-but` (a value, a list, or `prefix` / `suffix` /
//! `equals-ignore-case`); `numeric` comparisons and ranges; `exists` true / false; `$or` over sub-patterns.
//! An event value that is an array matches when any element matches.

use serde_json::{Map, Value};

/// A filter pattern that AWS would reject (it refuses to create such a mapping; so do we).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter pattern at {path}: {reason}")]
pub struct PatternError {
    /// Where in the pattern, as dotted keys.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Every key must match.
    Fields(Vec<(String, Field)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    /// A nested object pattern.
    Nested(Node),
    /// A list of matchers for a leaf value; any may match.
    Leaf(Vec<Matcher>),
    /// `"$or": [pattern, …]`: any sub-pattern matches (at this level).
    Or(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Matcher>),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Pattern {
    /// Compiles a pattern from its JSON text (as written in `FilterCriteria.Filters[].Pattern`).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatternError {
            path: String::new(),
            reason: format!("not JSON: {e}"),
        })?;
        match value {
            Value::Object(map) => Ok(Pattern(node(&map, "")?)),
            _ => Err(err("", "a pattern is a JSON object")),
        }
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        match_node(&self.0, Some(event))
    }
}

/// Whether `event` passes `filters`: no filters means everything passes; otherwise any pattern must match.
pub fn passes(filters: &[Pattern], event: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|p| p.matches(event))
}

/// The value a Kinesis record is matched as (see the module docs).
pub fn kinesis_record_value(
    partition_key: &str,
    sequence_number: &str,
    approximate_arrival_timestamp: f64,
    data: &[u8],
) -> Value {
    let mut map = Map::new();
    map.insert("kinesisSchemaVersion".into(), Value::from("1.0"));
    map.insert("partitionKey".into(), Value::from(partition_key));
    map.insert("sequenceNumber".into(), Value::from(sequence_number));
    map.insert(
        "approximateArrivalTimestamp".into(),
        Value::from(approximate_arrival_timestamp),
    );
    if let Ok(data) = serde_json::from_slice::<Value>(data) {
        map.insert("data".into(), data);
    }
    Value::Object(map)
}

fn err(path: &str, reason: impl Into<String>) -> PatternError {
    PatternError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn node(map: &Map<String, Value>, path: &str) -> Result<Node, PatternError> {
    if map.is_empty() {
        return Err(err(path, "an empty object matches nothing"));
    }
    let mut fields = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join(path, key);
        let field = match (key.as_str(), value) {
            ("$or", Value::Array(items)) => {
                if items.len() < 2 {
                    return Err(err(&here, "$or needs at least two sub-patterns"));
                }
                let subs = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(m) => node(m, &here),
                        _ => Err(err(&here, "$or takes objects")),
                    })
                    .collect::<Result<_, _>>()?;
                Field::Or(subs)
            }
            (_, Value::Object(m)) => Field::Nested(node(m, &here)?),
            (_, Value::Array(items)) => {
                if items.is_empty() {
                    return Err(err(&here, "an empty list matches nothing"));
                }
                Field::Leaf(
                    items
                        .iter()
                        .map(|i| matcher(i, &here))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => return Err(err(&here, "a leaf must be a list of values or matchers")),
        };
        fields.push((key.clone(), field));
    }
    Ok(Node::Fields(fields))
}

fn matcher(item: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Object(m) = item else {
        return match item {
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {
                Ok(Matcher::Exact(item.clone()))
            }
            _ => Err(err(path, "a value list may not nest lists")),
        };
    };
    if m.len() != 1 {
        return Err(err(path, "a matcher object has exactly one operator"));
    }
    let (op, arg) = m.iter().next().ok_or_else(|| err(path, "empty matcher"))?;
    let string = |what: &str| match arg {
        Value::String(s) => Ok(s.clone()),
        _ => Err(err(path, format!("{what} takes a string"))),
    };
    match op.as_str() {
        "prefix" => Ok(Matcher::Prefix(string("prefix")?)),
        "suffix" => Ok(Matcher::Suffix(string("suffix")?)),
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(string("equals-ignore-case")?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            _ => Err(err(path, "exists takes true or false")),
        },
        "anything-but" => {
            let inner = match arg {
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| match i {
                        Value::String(_) | Value::Number(_) => Ok(Matcher::Exact(i.clone())),
                        _ => Err(err(path, "anything-but lists strings or numbers")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Value::String(_) | Value::Number(_) => vec![Matcher::Exact(arg.clone())],
                Value::Object(o) if o.len() == 1 => {
                    let m = matcher(arg, path)?;
                    match m {
                        Matcher::Prefix(_) | Matcher::Suffix(_) | Matcher::EqualsIgnoreCase(_) => {
                            vec![m]
                        }
                        _ => {
                            return Err(err(
                                path,
                                "anything-but takes prefix, suffix or equals-ignore-case",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(err(
                        path,
                        "anything-but takes a value, a list or a prefix/suffix",
                    ))
                }
            };
            Ok(Matcher::AnythingBut(inner))
        }
        "numeric" => numeric(arg, path),
        other => Err(err(path, format!("unknown operator {other:?}"))),
    }
}

fn numeric(arg: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Array(items) = arg else {
        return Err(err(path, "numeric takes a list"));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(err(
            path,
            "numeric takes one or two (operator, number) pairs",
        ));
    }
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let cmp = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => return Err(err(path, "numeric operators are =, <, <=, >, >=")),
        };
        let n = pair[1]
            .as_f64()
            .ok_or_else(|| err(path, "numeric compares with a number"))?;
        out.push((cmp, n));
    }
    if out.len() == 2 && (out.iter().any(|(c, _)| *c == Cmp::Eq)) {
        return Err(err(path, "a numeric range uses < <= > >="));
    }
    Ok(Matcher::Numeric(out))
}

fn match_node(node: &Node, event: Option<&Value>) -> bool {
    let Node::Fields(fields) = node;
    let obj = event.and_then(Value::as_object);
    fields.iter().all(|(key, field)| match field {
        Field::Or(subs) => subs.iter().any(|n| match_node(n, event)),
        Field::Nested(n) => match obj.and_then(|o| o.get(key)) {
            // A nested pattern over an array matches when any element matches.
            Some(Value::Array(items)) => items.iter().any(|i| match_node(n, Some(i))),
            other => match_node(n, other),
        },
        Field::Leaf(matchers) => leaf(matchers, obj.and_then(|o| o.get(key))),
    })
}

fn leaf(matchers: &[Matcher], value: Option<&Value>) -> bool {
    matchers.iter().any(|m| match (m, value) {
        (Matcher::Exists(want), v) => *want == v.is_some(),
        (_, None) => false,
        (m, Some(Value::Array(items))) => items.iter().any(|i| one(m, i)),
        (m, Some(v)) => one(m, v),
    })
}

fn one(m: &Matcher, v: &Value) -> bool {
    match m {
        Matcher::Exact(want) => exact(want, v),
        Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => v
            .as_str()
            .is_some_and(|s| s.to_lowercase() == p.to_lowercase()),
        Matcher::AnythingBut(not) => {
            // Only values of a comparable kind pass: strings against string lists, numbers against numbers.
            let comparable = not.iter().all(|n| match n {
                Matcher::Exact(Value::Number(_)) => v.is_number(),
                _ => v.is_string(),
            });
            comparable && !not.iter().any(|n| one(n, v))
        }
        Matcher::Numeric(conds) => v.as_f64().is_some_and(|x| {
            conds.iter().all(|(c, n)| match c {
                Cmp::Eq => x == *n,
                Cmp::Lt => x < *n,
                Cmp::Le => x <= *n,
                Cmp::Gt => x > *n,
                Cmp::Ge => x >= *n,
            })
        }),
        Matcher::Exists(_) => true,
    }
}

fn exact(want: &Value, v: &Value) -> bool {
    match (want, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == v,
    }
}

#[cfg(test)]
mod tests;
