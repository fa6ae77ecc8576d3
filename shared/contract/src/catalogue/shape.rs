//! The shape of an event type's `data`, read from its JSON Schema ([`crate::schema`]): the members it defines,
//! which of them are required and which JSON types each takes.
//!
//! `data` is checked against its shape before the typed decode, so that every structural problem (an unknown,
//! repeated, missing or wrongly typed member) is reported in one answer, where serde stops at the first. The typed
//! decode then sees only members of the right JSON type and can only fail on a value (a timestamp that does not
//! parse, an unknown enum variant); those are collected too, one member at a time. A valid event costs one pass
//! over its members' names and first bytes, and a decode from the raw values captured in the envelope's own pass;
//! or, on the fast path when the event's `type` came first, one pass that checks each member against the shape
//! as it decodes it ([`decode_scan`]).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::catalogue::EventType;
use crate::suggest;
use crate::validate::{Checker, TIMESTAMP_MESSAGE};
use crate::violation::{escape_pointer, from_serde, pointer_from_path, Code, Violation};

/// The members of a `data` object as sent: each name and its raw JSON value, in document order.
pub(crate) type Members<'a> = [(Cow<'a, str>, &'a RawValue)];

/// The members of a `data` object as the fast path ([`decode_fast`]) captures them: each value's raw JSON,
/// checked by [`crate::json::Scanner`] as it skipped it.
pub(crate) type ScannedMembers<'a> = [(Cow<'a, str>, &'a str)];

/// A member's value as raw JSON text, however it was captured.
trait RawJson {
    fn text(&self) -> &str;
}

impl RawJson for &RawValue {
    fn text(&self) -> &str {
        self.get()
    }
}

impl RawJson for &str {
    fn text(&self) -> &str {
        self
    }
}

/// What to do with a member the type does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Refuse it (`unknown_member`): at the edge, where a sender can still fix the event.
    Refuse,
    /// Skip it: behind the edge, where a newer ingest may have written a member this consumer does not know yet.
    Ignore,
}

/// The JSON types a value may have, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds(u8);

impl Kinds {
    const NULL: Kinds = Kinds(1);
    const BOOLEAN: Kinds = Kinds(1 << 1);
    const INTEGER: Kinds = Kinds(1 << 2);
    /// A number written with a fraction or an exponent, which no integer member accepts (serde's rule, stricter
    /// than JSON Schema's, which counts `1250.0` as an integer).
    const FRACTION: Kinds = Kinds(1 << 3);
    const STRING: Kinds = Kinds(1 << 4);
    const ARRAY: Kinds = Kinds(1 << 5);
    const OBJECT: Kinds = Kinds(1 << 6);
    const NONE: Kinds = Kinds(0);
    const ANY: Kinds = Kinds(0x7f);

    const NAMES: [(Kinds, &'static str); 7] = [
        (Kinds::STRING, "a string"),
        (Kinds::INTEGER, "an integer"),
        (Kinds::FRACTION, "a number with a fraction or an exponent"),
        (Kinds::BOOLEAN, "a boolean"),
        (Kinds::OBJECT, "an object"),
        (Kinds::ARRAY, "an array"),
        (Kinds::NULL, "null"),
    ];

    /// The kind of a raw JSON value, from its first byte (serde_json captures raw values without leading space).
    #[cfg(test)]
    fn of_raw(raw: &RawValue) -> Kinds {
        Kinds::of_text(raw.get())
    }

    /// The kind of a raw JSON value's text (as captured: no leading space), from its first byte.
    fn of_text(text: &str) -> Kinds {
        let text = text.as_bytes();
        match text.first() {
            Some(b'n') => Kinds::NULL,
            Some(b't' | b'f') => Kinds::BOOLEAN,
            Some(b'"') => Kinds::STRING,
            Some(b'[') => Kinds::ARRAY,
            Some(b'{') => Kinds::OBJECT,
            Some(_) if text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => Kinds::FRACTION,
            Some(_) => Kinds::INTEGER,
            None => Kinds::NONE,
        }
    }

    fn of_value(value: &Value) -> Kinds {
        match value {
            Value::Null => Kinds::NULL,
            Value::Bool(_) => Kinds::BOOLEAN,
            Value::Number(n) if n.is_f64() => Kinds::FRACTION,
            Value::Number(_) => Kinds::INTEGER,
            Value::String(_) => Kinds::STRING,
            Value::Array(_) => Kinds::ARRAY,
            Value::Object(_) => Kinds::OBJECT,
        }
    }

    /// A JSON Schema `type` name.
    fn of_type_name(name: &str) -> Kinds {
        match name {
            "null" => Kinds::NULL,
            "boolean" => Kinds::BOOLEAN,
            "integer" => Kinds::INTEGER,
            "number" => Kinds::INTEGER.or(Kinds::FRACTION),
            "string" => Kinds::STRING,
            "array" => Kinds::ARRAY,
            "object" => Kinds::OBJECT,
            _ => Kinds::ANY,
        }
    }

    fn or(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    fn contains(self, other: Kinds) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// "a string or null"; "a number" for integers and fractions together.
    fn describe(self) -> String {
        let number = Kinds::INTEGER.or(Kinds::FRACTION);
        let mut names: Vec<&str> = Vec::new();
        for (kind, name) in Kinds::NAMES {
            if self.contains(number) && kind == Kinds::INTEGER {
                names.push("a number");
            } else if !(self.contains(number) && kind == Kinds::FRACTION) && self.contains(kind) {
                names.push(name);
            }
        }
        names.join(" or ")
    }
}

/// One member a type defines.
#[derive(Debug)]
struct Member {
    name: String,
    required: bool,
    kinds: Kinds,
    /// What a value of the right JSON type that still does not decode is told: the rule, not the parser's words.
    hint: String,
}

/// The shape of one type's `data`.
#[derive(Debug)]
pub(crate) struct Shape {
    type_name: &'static str,
    members: Vec<Member>,
}

/// Members past this many are not tracked for repetition and presence (serde still reports a missing one); no
/// catalogue type comes near it (a test says so).
const TRACKED: usize = u64::BITS as usize;

impl Shape {
    /// The shape `ty`'s JSON Schema describes.
    pub(crate) fn of(ty: EventType) -> Shape {
        let (schema, defs) = data_schema(ty);
        Shape::from_schema(ty.as_str(), &schema, &defs)
    }

    fn from_schema(type_name: &'static str, schema: &Value, defs: &Map<String, Value>) -> Shape {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut members: Vec<Member> = schema["properties"]
            .as_object()
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, s)| Member {
                        name: name.clone(),
                        required: required.contains(&name.as_str()),
                        kinds: kinds(s, defs, 0),
                        hint: hint(s, defs),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Required members first, in the order the schema lists them (the struct's): missing ones are reported
        // in that order.
        members.sort_by_key(|m| {
            required
                .iter()
                .position(|r| *r == m.name)
                .unwrap_or(usize::MAX)
        });
        Shape { type_name, members }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// Checks `members` against this shape and records every problem in `c`. `None` when there is none (decode
    /// them all, as sent); otherwise the positions of the members the typed decode may still look at (known, of
    /// their type, first of their name), so that it can find the problems of values too.
    fn check<R: RawJson>(
        &self,
        members: &[(Cow<'_, str>, R)],
        unknown: Unknown,
        c: &mut Checker,
    ) -> Option<Vec<usize>> {
        let mut seen = 0u64;
        let mut keep: Option<Vec<usize>> = None;
        for (i, (name, raw)) in members.iter().enumerate() {
            // Members usually come in the schema's order (as ingest writes them): tried first.
            let at = match self.members.get(i) {
                Some(m) if m.name == *name => Some(i),
                _ => self.index(name),
            };
            let problem = match at {
                None if unknown == Unknown::Ignore => None,
                None => Some(self.unknown(name)),
                Some(m) => {
                    let bit = 1u64.checked_shl(u32::try_from(m).unwrap_or(u32::MAX));
                    let repeated = bit.is_some_and(|bit| seen & bit != 0);
                    seen |= bit.unwrap_or(0);
                    let member = &self.members[m];
                    let kind = Kinds::of_text(raw.text());
                    if repeated {
                        Some(Violation::at(
                            Code::DuplicateMember,
                            pointer(name),
                            "appears more than once",
                        ))
                    } else if !member.kinds.contains(kind) {
                        Some(Violation::at(
                            Code::InvalidType,
                            pointer(name),
                            format!(
                                "must be {}, not {}",
                                member.kinds.describe(),
                                kind.describe()
                            ),
                        ))
                    } else {
                        None
                    }
                }
            };
            match (problem, &mut keep) {
                (None, Some(keep)) => keep.push(i),
                (None, None) => {}
                (Some(v), keep) => {
                    c.push(v);
                    // Every member before the first problem was fine.
                    keep.get_or_insert_with(|| (0..i).collect());
                }
            }
        }
        for (m, member) in self.members.iter().enumerate().take(TRACKED) {
            if member.required && seen & (1 << m) == 0 {
                c.push(Violation::at(
                    Code::MissingField,
                    pointer(&member.name),
                    format!("`{}` is required", member.name),
                ));
                keep.get_or_insert_with(|| (0..members.len()).collect());
            }
        }
        keep
    }

    fn unknown(&self, name: &str) -> Violation {
        let message = match suggest::nearest(name, self.members.iter().map(|m| m.name.as_str())) {
            Some(near) => format!(
                "`{}` data has no such member; did you mean `{near}`?",
                self.type_name
            ),
            None => format!(
                "`{}` data has no such member; its members are {}",
                self.type_name,
                self.members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Violation::at(Code::UnknownMember, pointer(name), message)
    }

    /// The hint for a value of member `name` that did not decode, if it is one of ours.
    fn hint(&self, name: &str) -> Option<&str> {
        self.index(name).map(|m| self.members[m].hint.as_str())
    }
}

/// Decodes `members` as `T`, checking them against `shape` first; every problem goes to `c`.
///
/// `Some` when the typed value could be built, which may leave out optional members that had a problem (already
/// recorded, so the event is refused all the same; the rules of [`crate::validate::Validate`] can still run on
/// the rest). `None` when a required member is missing or broken.
pub(crate) fn decode<T: DeserializeOwned>(
    shape: &Shape,
    members: &Members<'_>,
    unknown: Unknown,
    c: &mut Checker,
) -> Option<T> {
    match shape.check(members, unknown, c) {
        // The hot path: one decode from the raw values; members it does not know are skipped by serde.
        None => T::deserialize(map(members.iter())).ok().or_else(|| {
            let all = (0..members.len()).collect();
            decode_each_problem(shape, members, all, c)
        }),
        Some(keep) => decode_each_problem(shape, members, keep, c),
    }
}

/// Decodes the members at `keep` again and again, each time recording the member whose value failed and leaving
/// it out, until the value decodes or what fails is a missing member (recorded by the shape, or now).
fn decode_each_problem<T: DeserializeOwned>(
    shape: &Shape,
    members: &Members<'_>,
    mut keep: Vec<usize>,
    c: &mut Checker,
) -> Option<T> {
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(map(keep
            .iter()
            .filter_map(|&i| members.get(i))))
        {
            Ok(value) => return Some(value),
            Err(err) => err,
        };
        let member = err.path().iter().next().and_then(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        let depth = err.path().iter().count();
        let mut v = from_serde(
            format!("/data{}", pointer_from_path(err.path())),
            err.inner(),
        );
        let position = member.as_deref().and_then(|name| {
            keep.iter()
                .position(|&i| members.get(i).is_some_and(|(n, _)| n == name))
        });
        match position {
            Some(p) if v.code != Code::MissingField => {
                // A member's own value: say its rule rather than the parser's words (which may quote the value).
                if depth == 1 && err.inner().is_data() {
                    if let Some(hint) = member.as_deref().and_then(|name| shape.hint(name)) {
                        hint.clone_into(&mut v.message);
                    }
                }
                c.push(v);
                keep.remove(p);
            }
            _ => {
                if !v.field.as_deref().is_some_and(|f| c.reported_at(f)) {
                    c.push(v);
                }
                return None;
            }
        }
    }
}

/// The members as a map serde can decode a struct from, each value read from its raw JSON.
fn map<'m, 'a: 'm>(
    members: impl Iterator<Item = &'m (Cow<'a, str>, &'a RawValue)>,
) -> MapDeserializer<'a, impl Iterator<Item = (&'m str, &'a RawValue)>, serde_json::Error> {
    MapDeserializer::new(members.map(|(name, raw)| (name.as_ref(), *raw)))
}

fn pointer(name: &str) -> String {
    format!("/data/{}", escape_pointer(name))
}

/// `#/$defs/Name` → its definition; anything else as it is. A few hops at most, in case of a cycle.
fn resolve<'s>(mut schema: &'s Value, defs: &'s Map<String, Value>) -> &'s Value {
    for _ in 0..8 {
        match schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| defs.get(name))
        {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// The JSON types a member's schema admits: its `type`, else what its `const`, `enum` or `oneOf`/`anyOf`
/// branches admit; anything when the schema does not say.
fn kinds(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Kinds {
    let schema = resolve(schema, defs);
    if depth > 8 {
        return Kinds::ANY;
    }
    if let Some(name) = schema["type"].as_str() {
        return Kinds::of_type_name(name);
    }
    if let Some(names) = schema["type"].as_array() {
        return names
            .iter()
            .map(|n| n.as_str().map_or(Kinds::ANY, Kinds::of_type_name))
            .fold(Kinds::NONE, Kinds::or);
    }
    if let Some(value) = schema.get("const") {
        return Kinds::of_value(value);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(Kinds::of_value)
            .fold(Kinds::NONE, Kinds::or);
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(branches) = schema[combinator].as_array() {
            return branches
                .iter()
                .map(|b| kinds(b, defs, depth + 1))
                .fold(Kinds::NONE, Kinds::or);
        }
    }
    Kinds::ANY
}

/// What a value of a member that fails to decode is told, from the member's schema.
fn hint(schema: &Value, defs: &Map<String, Value>) -> String {
    let schema = resolve(schema, defs);
    if schema["format"] == "date-time" {
        return TIMESTAMP_MESSAGE.to_owned();
    }
    let choices: Vec<&str> = match (schema["enum"].as_array(), schema["oneOf"].as_array()) {
        (Some(values), _) => values.iter().filter_map(Value::as_str).collect(),
        (None, Some(branches)) => branches
            .iter()
            .filter_map(|b| resolve(b, defs)["const"].as_str())
            .collect(),
        (None, None) => Vec::new(),
    };
    match choices.len() {
        0 => {}
        1..=12 => return format!("must be one of {}", choices.join(", ")),
        n => return format!("must be one of the {n} values the schema lists"),
    }
    match (schema["minimum"].as_i64(), schema["maximum"].as_i64()) {
        (Some(min), Some(max)) => format!("must be an integer from {min} to {max}"),
        _ => format!(
            "must be {}",
            kinds(schema, defs, 0).describe().replace(" or null", "")
        ),
    }
}

/// The members of a JSON object text, for tests that decode `data` without an envelope around it.
/// The schema of `ty`'s `data`, and the definitions it refers to (`#/$defs/…`).
///
/// `data` has the members its type defines and no other (`additionalProperties: false`): ingest refuses an
/// unknown member, which is most often a misspelt optional one whose value would otherwise be lost. The same
/// schema is the shape ingest checks `data` against before decoding it (this module), so the two agree by
/// construction.
pub(crate) fn data_schema(ty: EventType) -> (Value, Map<String, Value>) {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let mut data = ty.data_schema(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    if let Some(map) = data.as_object_mut() {
        // The data's title is its Rust name; the envelope's is what producers know.
        map.remove("$schema");
        map.remove("title");
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    (data, defs)
}

#[cfg(test)]
pub(crate) fn members_of(text: &str) -> Vec<(Cow<'_, str>, &RawValue)> {
    use serde::Deserialize;

    struct Collect<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Collect<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Collect<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                        out.push((key, map.next_value::<&'de RawValue>()?));
                    }
                    Ok(Collect(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Collect<'_>>(text)
        .map(|c| c.0)
        .unwrap_or_default()
}

pub(crate) use fast::{decode_fast, decode_scan};

mod fast;
#[cfg(test)]
mod tests;
