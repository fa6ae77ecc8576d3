//! Sample events: a catalogue type's example ([`tubes_contract::schema::example`], the one in its JSON Schema)
//! with overrides.
//!
//! **`--set PATH=VALUE`.** PATH is dot-separated member names (a number indexes an array). A path whose first
//! name is an envelope attribute (`id`, `source`, `type`, `subject`, `time`, `datacontenttype`, `dataschema`,
//! `traceparent`, `specversion`) or `data` starts at the envelope; any other is a member of `data`: `amount` is
//! `data.amount`. A leading dot always starts at the envelope (`.myext=1`: an extension attribute). Missing
//! objects on the way are created. VALUE is JSON when it parses as JSON (`999`, `-1`, `true`, `null`,
//! `{"a":1}`, `"42"` for a string of digits), else a string (`USD`). `{i}` in VALUE becomes the event's number
//! (0, 1, …) under `--count`, e.g. `--set payment_id=pay_{i}`.

use serde_json::Value;
use tubes_contract::envelope::CONTEXT_ATTRIBUTES;
use tubes_contract::trace::TRACEPARENT;
use tubes_contract::{schema, EventType};

use super::DevError;

/// Whether a bare `--set` path's first name is one of the envelope's members (anything else is in `data`).
fn at_envelope(name: &str) -> bool {
    CONTEXT_ATTRIBUTES.contains(&name) || name == TRACEPARENT || name == "data"
}

/// A catalogue type by its name, or the list of them (clap's value parser).
pub(super) fn parse_type(name: &str) -> Result<EventType, String> {
    EventType::parse(name).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!(
            "no event type {name:?} in the catalogue: one of {}",
            known.join(", ")
        )
    })
}

/// One `--set PATH=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Set {
    /// The members from the envelope's root.
    path: Vec<String>,
    /// The value as written (`{i}` still in it).
    raw: String,
}

impl Set {
    /// Parses `PATH=VALUE` (clap's value parser).
    pub(super) fn parse(arg: &str) -> Result<Self, String> {
        let (path, raw) = arg.split_once('=').ok_or_else(|| {
            format!("{arg:?} is not PATH=VALUE (e.g. amount=999, data.currency=USD)")
        })?;
        let (anchored, path) = match path.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, path),
        };
        let mut names: Vec<String> = path.split('.').map(str::to_owned).collect();
        if names.iter().any(String::is_empty) {
            return Err(format!("{arg:?}: the path has an empty member name"));
        }
        if !anchored && !at_envelope(&names[0]) {
            names.insert(0, "data".into());
        }
        Ok(Self {
            path: names,
            raw: raw.to_owned(),
        })
    }

    /// The path as a JSON pointer (`/data/amount`), as ingest names members.
    pub(super) fn pointer(&self) -> String {
        self.path.iter().map(|n| format!("/{n}")).collect()
    }

    /// The value for event number `n`.
    fn value(&self, n: u64) -> Value {
        let raw = self.raw.replace("{i}", &n.to_string());
        serde_json::from_str(&raw).unwrap_or(Value::String(raw))
    }

    /// Sets this path of `event` to the value for event number `n`.
    pub(super) fn apply(&self, event: &mut Value, n: u64) -> Result<(), DevError> {
        let mut at = event;
        let (last, parents) = self.path.split_last().unwrap_or((&self.path[0], &[]));
        for name in parents {
            at = match at {
                Value::Object(map) => map
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Default::default())),
                Value::Array(items) => index(items, name, self)?,
                _ => return Err(self.not_a_container()),
            };
        }
        match at {
            Value::Object(map) => {
                map.insert(last.clone(), self.value(n));
            }
            Value::Array(items) => *index(items, last, self)? = self.value(n),
            _ => return Err(self.not_a_container()),
        }
        Ok(())
    }

    fn not_a_container(&self) -> DevError {
        DevError::Usage(format!(
            "--set {}: a member on the way is neither an object nor an array",
            self.pointer()
        ))
    }
}

fn index<'a>(items: &'a mut [Value], name: &str, set: &Set) -> Result<&'a mut Value, DevError> {
    let len = items.len();
    name.parse::<usize>()
        .ok()
        .and_then(|i| items.get_mut(i))
        .ok_or_else(|| {
            DevError::Usage(format!(
                "--set {}: {name} is not an index of an array of {len}",
                set.pointer()
            ))
        })
}

/// What the sample's `id` and `time` become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Identity {
    /// Left out: ingest gives each event a fresh id and its receive time (a fixed id would be the same event
    /// again to every consumer, which skips it).
    Ingest,
    /// A fresh UUIDv7 and now: the event as it would be on the stream, for a function.
    Fresh,
}

/// Event number `n` of type `ty`: its example, with `subject` (also its aggregate member in `data`) and the
/// overrides applied, in that order.
pub(super) fn event(
    ty: EventType,
    identity: Identity,
    subject: Option<&str>,
    sets: &[Set],
    n: u64,
) -> Result<Value, DevError> {
    let mut event = schema::example(ty);
    if let Value::Object(map) = &mut event {
        match identity {
            Identity::Ingest => {
                map.remove("id");
                map.remove("time");
            }
            Identity::Fresh => {
                let now = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                map.insert("id".into(), uuid::Uuid::now_v7().to_string().into());
                map.insert("time".into(), now.into());
            }
        }
    }
    if let Some(subject) = subject {
        event["subject"] = subject.into();
        event["data"][ty.aggregate_member()] = subject.into();
    }
    for set in sets {
        set.apply(&mut event, n)?;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(arg: &str) -> Set {
        Set::parse(arg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_bare_name_is_in_data_an_attribute_or_data_path_at_the_envelope() {
        assert_eq!(set("amount=1").pointer(), "/data/amount");
        assert_eq!(set("data.currency=USD").pointer(), "/data/currency");
        assert_eq!(set("subject=acc_1").pointer(), "/subject");
        assert_eq!(set("traceparent=x").pointer(), "/traceparent");
        assert_eq!(set(".myext=1").pointer(), "/myext");
        assert_eq!(set("meta.tags.0=a").pointer(), "/data/meta/tags/0");
        assert!(Set::parse("amount").is_err());
        assert!(Set::parse("data..amount=1").is_err());
    }

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        let mut e = json!({"data": {"list": [1, 2]}});
        for (arg, n) in [
            ("amount=999", 0),
            ("currency=USD", 0),
            ("quoted=\"42\"", 0),
            ("flag=true", 0),
            ("gone=null", 0),
            ("obj={\"a\":1}", 0),
            ("payment_id=pay_{i}", 7),
            ("list.1=3", 0),
            ("new.deep=x", 0),
        ] {
            set(arg).apply(&mut e, n).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            e["data"],
            json!({"amount": 999, "currency": "USD", "quoted": "42", "flag": true, "gone": null,
                   "obj": {"a": 1}, "payment_id": "pay_7", "list": [1, 3], "new": {"deep": "x"}})
        );
        assert!(set("list.5=1").apply(&mut e, 0).is_err(), "out of range");
        assert!(set("amount.x=1").apply(&mut e, 0).is_err(), "into a number");
    }

    #[test]
    fn a_sample_is_the_example_with_its_subject_and_overrides() {
        let e = event(
            EventType::PaymentReceived,
            Identity::Ingest,
            Some("acc_7"),
            &[set("amount=999"), set("subject=acc_8")],
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(e.get("id").is_none() && e.get("time").is_none(), "{e}");
        assert_eq!(e["data"]["account_id"], "acc_7");
        assert_eq!(e["subject"], "acc_8", "--set after --subject");
        assert_eq!(e["data"]["amount"], 999);
        let fresh = event(EventType::UserSignedUp, Identity::Fresh, None, &[], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        // The contract accepts it as it is.
        let parsed = tubes_contract::Envelope::parse(
            fresh.to_string().as_bytes(),
            time::OffsetDateTime::now_utc(),
        );
        assert!(parsed.is_ok_and(|p| p.id() == fresh["id"]), "{fresh}");
    }

    #[test]
    fn an_unknown_type_names_the_known_ones() {
        let err = parse_type("payment.recieved").err().unwrap_or_default();
        assert!(
            err.contains("payment.received") && err.contains("user.unsubscribed"),
            "{err}"
        );
    }
}
