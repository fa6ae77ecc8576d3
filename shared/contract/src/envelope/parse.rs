//! One pass over an envelope's bytes: attributes borrowed where they can be, `data`'s members captured as raw
//! JSON, every violation collected; then the data checked and decoded by its type.
//!
//! Two readers make that pass. The fast one ([`scan`], over [`crate::json::Scanner`]) takes a valid event only: at
//! the first thing wrong or unusual it declines, and serde_json reads the event again and words every violation
//! as it always has. A valid event decodes to the same envelope either way (tests compare the two). When `type`
//! comes before `data`, as ingest writes events, the fast reader decodes the data as it reads it
//! ([`Event::decode_data_scan`]) rather than capturing its members first.
use std::borrow::Cow;

use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::*;
use crate::catalogue::{Event, EventType, Unknown};
use crate::validate::{Checker, Validate, MAX_ID_LEN, MAX_SOURCE_LEN, TIMESTAMP_MESSAGE};
use crate::violation::{Code, Violation, Violations};

pub(super) use serde_pass::parse_serde;

mod serde_pass;

/// The id of an event sent without one, at the edge.
pub(super) type IdIfAbsent<'a> = Option<&'a dyn Fn() -> String>;

pub(super) fn parse(
    bytes: &[u8],
    received_at: Option<OffsetDateTime>,
    id_if_absent: IdIfAbsent<'_>,
) -> Result<Envelope, Violations> {
    // UTF-8 checked once for the whole document: read from a `str`, serde_json need not check each string and
    // each captured member again.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            return Err(Violations::one(Violation::whole(
                Code::MalformedJson,
                format!(
                    "the event is not valid UTF-8 (at byte {})",
                    err.valid_up_to()
                ),
            )))
        }
    };
    parse_text(text, received_at, id_if_absent)
}

/// [`parse`] of text already known to be UTF-8.
pub(super) fn parse_text(
    text: &str,
    received_at: Option<OffsetDateTime>,
    id_if_absent: IdIfAbsent<'_>,
) -> Result<Envelope, Violations> {
    // Filled in place and the envelope returned as it is, not taken apart and made again: both are a few hundred
    // bytes, and each copy of them showed in the consumer's profile.
    let mut raw = Raw::default();
    if scan(text, unknown_members(received_at), &mut raw).is_some() {
        let envelope = raw.make_envelope(received_at, id_if_absent);
        if envelope.is_ok() {
            return envelope;
        }
    }
    parse_serde(text, received_at, id_if_absent)
}

/// An attribute's value as it appeared, before validation.
enum Attr<'a> {
    Str(Cow<'a, str>),
    /// A JSON value of another kind: its kind, for the message.
    Other(&'static str),
}

/// What a `data` member its type does not define means: `decode` reads what ingest wrote, and members it does not
/// know are a newer ingest's (ignored); `parse` is the edge, where they are refused.
pub(super) fn unknown_members(received_at: Option<OffsetDateTime>) -> Unknown {
    if received_at.is_none() {
        Unknown::Ignore
    } else {
        Unknown::Refuse
    }
}

/// `data` as it appeared.
enum Data<'a> {
    /// An object: its members, each name and raw value, in document order.
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    /// An object, as [`scan`] reads it when `type` comes after it.
    Scanned(Vec<(Cow<'a, str>, &'a str)>),
    /// An object [`scan`] decoded as it read it, by the `type` that came before it (as ingest writes events).
    Decoded(Event),
    /// Any other JSON value but `null`.
    Other,
}

/// One pass over the envelope object, borrowing strings from the input where it can.
#[derive(Default)]
pub(super) struct Raw<'a> {
    attrs: [Option<Attr<'a>>; ATTRS.len()],
    data: Option<Data<'a>>,
    extensions: Vec<(Cow<'a, str>, serde_json::Value)>,
    violations: Vec<Violation>,
}

/// The context attributes of CloudEvents 1.0 that tubes reads, by slot.
pub(super) const ATTRS: [&str; 8] = CONTEXT_ATTRIBUTES;

/// The slot of `type` ([`attr_slot`]).
const TYPE_SLOT: usize = 3;

#[inline]
pub(super) fn attr_slot(name: &str) -> Option<usize> {
    // A match, not a search of `ATTRS`: the compiler dispatches on the length first (a test keeps the two in step).
    match name {
        "specversion" => Some(0),
        "id" => Some(1),
        "source" => Some(2),
        "type" => Some(TYPE_SLOT),
        "subject" => Some(4),
        "time" => Some(5),
        "datacontenttype" => Some(6),
        "dataschema" => Some(7),
        _ => None,
    }
}

/// A string attribute after a first look.
enum Got<'a> {
    Str(Cow<'a, str>),
    Absent,
    /// Present with another JSON type; the violation is already recorded.
    Invalid,
}

impl<'a> Raw<'a> {
    // Always inlined: called with each attribute's name as a constant, its slot is then found at compile time.
    #[inline(always)]
    fn string(&mut self, name: &str, c: &mut Checker) -> Got<'a> {
        match attr_slot(name).and_then(|i| self.attrs[i].take()) {
            Some(Attr::Str(s)) => Got::Str(s),
            Some(Attr::Other(kind)) => {
                c.push(Violation::at(
                    Code::InvalidType,
                    format!("/{name}"),
                    format!("must be a string, not {kind}"),
                ));
                Got::Invalid
            }
            None => Got::Absent,
        }
    }

    /// The envelope of what the pass read (taken out of `self`), or every violation found. By reference, not by
    /// value: `Raw` is a few hundred bytes, and its copy into the call showed in the consumer's profile.
    pub(super) fn make_envelope(
        &mut self,
        received_at: Option<OffsetDateTime>,
        id_if_absent: IdIfAbsent<'_>,
    ) -> Result<Envelope, Violations> {
        let mut c = Checker::new();
        for v in std::mem::take(&mut self.violations) {
            c.push(v);
        }
        // `decode` reads what ingest wrote: every attribute present, and members it does not know are a newer
        // ingest's (ignored). `parse` is the edge: attributes may be filled in, unknown members are refused.
        let strict = received_at.is_none();
        let unknown = unknown_members(received_at);
        let missing = |c: &mut Checker, name: &str| {
            c.push(Violation::at(
                Code::MissingField,
                format!("/{name}"),
                format!("`{name}` is required"),
            ))
        };

        match self.string("specversion", &mut c) {
            Got::Str(v) if v == SPECVERSION => {}
            Got::Str(_) => c.push(Violation::at(
                Code::UnsupportedSpecversion,
                "/specversion",
                "must be \"1.0\"",
            )),
            Got::Absent => missing(&mut c, "specversion"),
            Got::Invalid => {}
        }

        // `id`, `source` and `subject` stay borrowed from the input until the envelope is made: its `Names` copies
        // them into one allocation.
        let id: Cow<'_, str> = match self.string("id", &mut c) {
            Got::Str(id) => {
                c.id("/id", &id);
                id
            }
            Got::Absent if !strict => {
                Cow::Owned(id_if_absent.map_or_else(|| Uuid::now_v7().to_string(), |id| id()))
            }
            Got::Absent => {
                missing(&mut c, "id");
                Cow::Borrowed("")
            }
            Got::Invalid => Cow::Borrowed(""),
        };

        let source = match self.string("source", &mut c) {
            Got::Str(s) => {
                check_source(&mut c, &s);
                s
            }
            Got::Absent => {
                missing(&mut c, "source");
                Cow::Borrowed("")
            }
            Got::Invalid => Cow::Borrowed(""),
        };

        let time = match (self.string("time", &mut c), received_at) {
            (Got::Str(t), _) => match parse_time(&t) {
                // Already UTC as ingest writes it (`Z`): the conversion is skipped, not done for nothing.
                Ok(t) if t.offset().is_utc() => t,
                Ok(t) => t.to_offset(UtcOffset::UTC),
                Err(_) => {
                    c.push(Violation::at(
                        Code::InvalidValue,
                        "/time",
                        TIMESTAMP_MESSAGE,
                    ));
                    OffsetDateTime::UNIX_EPOCH
                }
            },
            (Got::Absent, Some(now)) => now.to_offset(UtcOffset::UTC),
            (Got::Absent, None) => {
                missing(&mut c, "time");
                OffsetDateTime::UNIX_EPOCH
            }
            (Got::Invalid, _) => OffsetDateTime::UNIX_EPOCH,
        };

        if let Got::Str(ct) = self.string("datacontenttype", &mut c) {
            if !is_json_media_type(&ct) {
                c.push(Violation::at(
                    Code::UnsupportedDataContentType,
                    "/datacontenttype",
                    "must be application/json (or another JSON media type)",
                ));
            }
        }

        let dataschema = match self.string("dataschema", &mut c) {
            Got::Str(s) => {
                c.id_max("/dataschema", &s, MAX_DATASCHEMA_LEN);
                Some(s.into_owned())
            }
            Got::Absent | Got::Invalid => None,
        };

        let subject = self.string("subject", &mut c);

        let event_type = match self.string("type", &mut c) {
            Got::Str(t) => {
                let ty = EventType::parse(&t);
                if ty.is_none() {
                    c.push(unknown_type(&t));
                }
                ty
            }
            Got::Absent => {
                missing(&mut c, "type");
                None
            }
            Got::Invalid => None,
        };

        let event = match (event_type, self.data.take()) {
            (_, None) => {
                missing(&mut c, "data");
                None
            }
            (None, Some(_)) => None,
            (Some(ty), Some(Data::Object(members))) => {
                let event = Event::decode_data(ty, &members, unknown, &mut c);
                if let Some(event) = &event {
                    event.validate(&mut c);
                }
                event
            }
            (Some(ty), Some(Data::Scanned(members))) => {
                let event = Event::decode_data_fast(ty, &members, unknown);
                match &event {
                    Some(event) => event.validate(&mut c),
                    // Never shown: the fast path gives way to serde_json's, which says what is wrong.
                    None => c.push(Violation::whole(Code::InvalidValue, "declined")),
                }
                event
            }
            // Decoded by this very type in the scan (which never decodes by another one: a second `type` declines).
            (Some(ty), Some(Data::Decoded(event))) if event.event_type() == ty => {
                event.validate(&mut c);
                Some(event)
            }
            (Some(_), Some(Data::Decoded(_))) => {
                c.push(Violation::whole(Code::InvalidValue, "declined"));
                None
            }
            (Some(_), Some(Data::Other)) => {
                c.push(Violation::at(
                    Code::NotAnObject,
                    "/data",
                    "must be a JSON object",
                ));
                None
            }
        };

        // `None`: the data's aggregate id.
        let subject = match (subject, &event) {
            (Got::Str(s), event) => {
                c.id("/subject", &s);
                if let Some(event) = event.as_ref().filter(|e| e.aggregate_id() != s) {
                    c.push(subject_mismatch(event));
                }
                Some(s)
            }
            (Got::Absent, Some(_)) if strict => {
                missing(&mut c, "subject");
                Some(Cow::Borrowed(""))
            }
            (Got::Absent, Some(_)) => None,
            (Got::Absent, None) | (Got::Invalid, _) => Some(Cow::Borrowed("")),
        };

        if !strict {
            // What tubes itself puts on replayed records: a sender who could set them could make a read model
            // skip its event as already applied.
            for (name, _) in &self.extensions {
                if super::RESERVED_EXTENSIONS.contains(&name.as_ref()) {
                    c.push(Violation::at(
                        Code::InvalidExtension,
                        format!("/{}", crate::violation::escape_pointer(name)),
                        "reserved: tubes sets this attribute on replayed events",
                    ));
                }
            }
        }
        // Most events have none: no collecting then (it showed in the consumer's profile).
        let extensions = if self.extensions.is_empty() {
            BTreeMap::new()
        } else {
            std::mem::take(&mut self.extensions)
                .into_iter()
                .map(|(name, value)| (name.into_owned(), value))
                .collect()
        };

        match (Violations::from_vec(c.into_violations()), event) {
            (None, Some(event)) => Ok(Envelope {
                names: Names::new(
                    &id,
                    &source,
                    subject.as_deref().unwrap_or_else(|| event.aggregate_id()),
                ),
                time,
                dataschema,
                extensions,
                event,
            }),
            (Some(v), _) => Err(v),
            // Every path that leaves `event` empty pushed a violation; stay total all the same.
            (None, None) => Err(Violations::one(Violation::at(
                Code::MissingField,
                "/data",
                "`data` is required",
            ))),
        }
    }
}

/// The fast pass over an event (see the module docs): `None` at the first thing it does not take, which is
/// anything that would be a violation of the envelope's own (an attribute of another JSON type, a repeated one,
/// `data` that is not an object, `data_base64`) and any extension but a string, a boolean or a non-negative
/// integer. The rest, extensions' names and values included, is checked as the serde_json pass checks it. What
/// it reads goes into `raw` (`unknown`: what a member of `data` its type does not define means).
pub(super) fn scan<'a>(text: &'a str, unknown: Unknown, raw: &mut Raw<'a>) -> Option<()> {
    use crate::json::{Keyword, Scanner};

    let mut s = Scanner::of_text(text);
    s.object(|s, key| {
        let name = key.unescaped()?;
        if let Some(i) = attr_slot(&name) {
            let value = match s.peek()? {
                b'"' => Some(Attr::Str(s.string()?.unescaped()?)),
                // `null` is as good as absent, as in the serde_json pass.
                b'n' => s.keyword().map(|_| None)?,
                _ => return None,
            };
            if raw.attrs[i].is_some() {
                return None;
            }
            raw.attrs[i] = value;
        } else if name == "data" {
            if raw.data.is_some() || s.peek()? != b'{' {
                return None;
            }
            // The type came first, as ingest writes it: the data is decoded as it is read, nothing captured.
            let ty = match &raw.attrs[TYPE_SLOT] {
                Some(Attr::Str(name)) => EventType::parse(name),
                _ => None,
            };
            if let Some(ty) = ty {
                raw.data = Some(Data::Decoded(Event::decode_data_scan(
                    ty, s, text, unknown,
                )?));
                return Some(());
            }
            let mut members = Vec::with_capacity(8);
            s.object(|s, key| {
                let name = key.unescaped()?;
                let start = s.peek().map(|_| s.position())?;
                s.skip_value()?;
                members.push((name, text.get(start..s.position())?));
                Some(())
            })?;
            raw.data = Some(Data::Scanned(members));
        } else if name == "data_base64" {
            return None;
        } else {
            let value = match s.peek()? {
                b'"' => serde_json::Value::String(s.string()?.unescaped()?.into_owned()),
                b't' | b'f' => serde_json::Value::Bool(s.keyword()? == Keyword::True),
                // serde_json reads `-0` as a float: negative numbers, fractions and exponents are left to it.
                b'0'..=b'9' => serde_json::Value::from(s.number()?.parse::<u64>().ok()?),
                _ => return None,
            };
            check_extension(raw, name, value);
        }
        Some(())
    })?;
    s.at_end().then_some(())
}

/// An RFC 3339 timestamp. The form ingest writes, `2026-11-22T10:00:00Z` with up to nine digits of fraction, is
/// read here (allocation-free, a few dozen instructions); any other form by `time`, which reads this one to the
/// same instant (a test compares them).
pub(crate) fn parse_time(t: &str) -> Result<OffsetDateTime, time::error::Parse> {
    fast_time(t).map_or_else(|| OffsetDateTime::parse(t, &Rfc3339), Ok)
}

pub(super) fn fast_time(t: &str) -> Option<OffsetDateTime> {
    let b = t.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b.last() != Some(&b'Z')
    {
        return None;
    }
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = num(20..b.len() - 1)?;
            n * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let year = i32::try_from(num(0..4)?).ok().filter(|y| *y >= 1)?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(num(8..10)?).ok()?).ok()?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // A leap second (`:60`) is left to `time`.
    let clock = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

/// `type` names no catalogue type: the nearest one, when one is close.
fn unknown_type(name: &str) -> Violation {
    let names = EventType::ALL.iter().map(|t| t.as_str());
    let message = match crate::suggest::nearest(name, names) {
        Some(near) => format!("is not an event type of the catalogue; did you mean `{near}`?"),
        None => format!(
            "is not an event type of the catalogue ({})",
            EventType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Violation::at(Code::UnknownEventType, "/type", message)
}

/// `subject` is not the data's aggregate id: which member it must equal, and its value when that is a valid id
/// (an id, not personal data; an invalid one is reported at its own pointer).
fn subject_mismatch(event: &Event) -> Violation {
    let member = event.event_type().aggregate_member();
    let id = event.aggregate_id();
    let message =
        if id.len() <= MAX_ID_LEN && !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()) {
            format!("must equal data.{member}, {id} (or be left out)")
        } else {
            format!("must equal data.{member} (or be left out)")
        };
    Violation::at(Code::SubjectMismatch, "/subject", message)
}

pub(super) fn check_source(c: &mut Checker, source: &str) {
    c.id_max("/source", source, MAX_SOURCE_LEN);
}

/// `application/json`, `text/json` or `application/<anything>+json`, with optional parameters.
pub(super) fn is_json_media_type(value: &str) -> bool {
    // What nearly every event says, compared first: the general reading below splits and trims.
    if value == "application/json" {
        return true;
    }
    let essence = value.split(';').next().unwrap_or_default().trim();
    // Compared without case and without allocating (it runs for every event).
    let starts = |prefix: &str| {
        essence
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let ends = |suffix: &str| {
        essence
            .len()
            .checked_sub(suffix.len())
            .and_then(|at| essence.get(at..))
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
    };
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/json")
        || (starts("application/") && ends("+json"))
}

fn duplicate(name: &str) -> Violation {
    Violation::at(
        Code::DuplicateMember,
        format!("/{}", crate::violation::escape_pointer(name)),
        "appears more than once",
    )
}

fn check_extension<'a>(raw: &mut Raw<'a>, name: Cow<'a, str>, value: serde_json::Value) {
    let pointer = format!("/{}", crate::violation::escape_pointer(&name));
    let name_ok = !name.is_empty()
        && name.len() <= MAX_EXTENSION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let value_ok = match &value {
        serde_json::Value::String(s) => s.len() <= MAX_EXTENSION_VALUE,
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
        _ => false,
    };
    if !name_ok {
        raw.violations.push(Violation::at(
            Code::InvalidExtension,
            pointer,
            format!("unknown attribute; extension names are 1 to {MAX_EXTENSION_NAME} lower-case letters or digits"),
        ));
    } else if !value_ok {
        raw.violations.push(Violation::at(
            Code::InvalidExtension,
            pointer,
            format!("extension values are strings (at most {MAX_EXTENSION_VALUE} bytes), numbers or booleans"),
        ));
    } else if raw.extensions.len() >= MAX_EXTENSIONS
        // tubes' own marks (a replay's) come on top of what the sender was allowed.
        && !super::RESERVED_EXTENSIONS.contains(&name.as_ref())
    {
        raw.violations.push(Violation::at(
            Code::InvalidExtension,
            pointer,
            format!("at most {MAX_EXTENSIONS} extension attributes"),
        ));
    } else if raw.extensions.iter().any(|(n, _)| *n == name) {
        raw.violations.push(duplicate(&name));
    } else if name == crate::trace::TRACEPARENT
        && value
            .as_str()
            .and_then(crate::trace::TraceParent::parse)
            .is_none()
    {
        // The distributed-tracing extension: a broken one would break the trace for everything downstream.
        raw.violations.push(Violation::at(
            Code::InvalidValue,
            pointer,
            "traceparent must be a W3C trace context: 00-{32 hex digits}-{16 hex digits}-{2 hex digits}, \
             lower case, ids not all zeros",
        ));
    } else {
        raw.extensions.push((name, value));
    }
}
