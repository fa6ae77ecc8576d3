//! The fast path's decode of `data` (issue #15): from the members the envelope's scan captured
//! ([`decode_fast`]), or straight from the scan itself ([`decode_scan`]), each value read from its raw JSON by
//! [`Scalar`]. Either takes only a clean decode, the same value [`super::decode`] makes, and answers `None` for
//! anything else: the caller then takes the serde_json path, which words every problem.

use std::borrow::Cow;

use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;

use super::{Kinds, ScannedMembers, Shape, Unknown, TRACKED};
use crate::json::Scanner;
use crate::validate::Checker;

/// The fast path's decode: `Some` only for members that `shape` finds nothing wrong with and that decode as `T`,
/// read from their raw JSON by [`Scalar`]; `None` otherwise, and the caller takes the serde_json path, which
/// words every problem. What it takes decodes to the same value as [`decode`] would make of it.
pub(crate) fn decode_fast<T: DeserializeOwned>(
    shape: &Shape,
    members: &ScannedMembers<'_>,
    unknown: Unknown,
) -> Option<T> {
    let mut c = Checker::new();
    if shape.check(members, unknown, &mut c).is_some() {
        return None;
    }
    let members = members
        .iter()
        .map(|(name, raw)| (name.as_ref(), Scalar(raw)));
    T::deserialize(MapDeserializer::<_, serde::de::value::Error>::new(members)).ok()
}

/// The fast path's decode of a `data` object straight from the envelope's scan, the scanner at its `{`: what
/// [`decode_fast`] does with captured members, without capturing them. Each member is checked against `shape` as
/// it is read (known unless `unknown` ignores it, not repeated, of its JSON type) and its raw value handed to
/// `T`'s decode ([`Scalar`]); then every required member must have come. `None` at the first thing it does not
/// take, the scanner then anywhere: the caller declines the whole event to the serde_json path.
pub(crate) fn decode_scan<'a, T: DeserializeOwned>(
    shape: &Shape,
    s: &mut Scanner<'a>,
    text: &'a str,
    unknown: Unknown,
) -> Option<T> {
    s.eat(b'{')?;
    let mut members = ScanMembers {
        s,
        text,
        shape,
        unknown,
        seen: 0,
        read: 0,
        member: None,
        closed: false,
    };
    let value = T::deserialize(ScanObject(&mut members)).ok()?;
    let complete = members.closed
        && shape
            .members
            .iter()
            .enumerate()
            .take(TRACKED)
            .all(|(m, member)| !member.required || members.seen & (1 << m) != 0);
    complete.then_some(value)
}

/// The `data` object of [`decode_scan`], as serde's `Deserializer` of a map.
struct ScanObject<'m, 's, 'a>(&'m mut ScanMembers<'s, 'a>);

/// The members of [`decode_scan`]'s object, read one by one from the scanner.
struct ScanMembers<'s, 'a> {
    s: &'s mut Scanner<'a>,
    text: &'a str,
    shape: &'s Shape,
    unknown: Unknown,
    /// The shape's members read so far, a bit each (as [`Shape::check`] tracks them).
    seen: u64,
    /// How many members were read: the position tried first in the shape (ingest writes them in its order).
    read: usize,
    /// The shape's member whose value comes next.
    member: Option<usize>,
    /// Whether the object's `}` was read.
    closed: bool,
}

/// Why [`decode_scan`] declined: never shown, the serde_json path words the problem.
fn declined() -> serde::de::value::Error {
    serde::de::Error::custom("declined")
}

impl<'de> serde::Deserializer<'de> for ScanObject<'_, '_, 'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> serde::de::MapAccess<'de> for ScanMembers<'_, 'de> {
    type Error = serde::de::value::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        loop {
            if self.closed {
                return Ok(None);
            }
            let more = if self.read == 0 {
                self.s.peek() != Some(b'}')
            } else {
                self.s.eat(b',').is_some()
            };
            if !more {
                self.s.eat(b'}').ok_or_else(declined)?;
                self.closed = true;
                return Ok(None);
            }
            // A name written with escapes is left to the serde_json path.
            let Some(Cow::Borrowed(name)) = self.s.string().and_then(|key| key.unescaped()) else {
                return Err(declined());
            };
            self.s.eat(b':').ok_or_else(declined)?;
            let guess = self.read;
            self.read += 1;
            let at = match self.shape.members.get(guess) {
                Some(m) if m.name == name => Some(guess),
                _ => self.shape.index(name),
            };
            let Some(m) = at else {
                // Skipped as `decode_fast` has serde skip it; refused at the edge.
                if self.unknown == Unknown::Ignore {
                    self.s.skip_value().ok_or_else(declined)?;
                    continue;
                }
                return Err(declined());
            };
            let bit = 1u64.checked_shl(u32::try_from(m).unwrap_or(u32::MAX));
            if bit.is_some_and(|bit| self.seen & bit != 0) {
                return Err(declined());
            }
            self.seen |= bit.unwrap_or(0);
            self.member = Some(m);
            return seed
                .deserialize(serde::de::value::BorrowedStrDeserializer::new(name))
                .map(Some);
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let m = self.member.take().ok_or_else(declined)?;
        self.s.peek().ok_or_else(declined)?;
        let start = self.s.position();
        self.s.skip_value().ok_or_else(declined)?;
        let raw = self
            .text
            .get(start..self.s.position())
            .ok_or_else(declined)?;
        if !self.shape.members[m].kinds.contains(Kinds::of_text(raw)) {
            return Err(declined());
        }
        seed.deserialize(Scalar(raw))
    }
}

/// A member's value read from its raw JSON (checked by the scanner), for the values a catalogue type holds: strings,
/// non-negative integers, booleans, `null`. It declines (an error) whatever it is not sure to read as serde_json
/// does (an escaped string it cannot borrow is read by serde_json itself; a negative number, a fraction or an
/// exponent, an object or array, an enum not written as a string), so that the serde_json path has the last word.
struct Scalar<'a>(&'a str);

impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for Scalar<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Scalar<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::Error as _;
        let raw = self.0;
        match raw.as_bytes() {
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                visitor.visit_borrowed_str(&raw[1..raw.len() - 1])
            }
            [b'"', ..] => visitor
                .visit_string(serde_json::from_str::<String>(raw).map_err(Self::Error::custom)?),
            b"true" => visitor.visit_bool(true),
            b"false" => visitor.visit_bool(false),
            b"null" => visitor.visit_unit(),
            // serde_json reads `-0` as a float, and larger integers than u64 holds as floats too: declined.
            digits if digits.iter().all(u8::is_ascii_digit) => match raw.parse::<u64>() {
                Ok(n) => visitor.visit_u64(n),
                Err(_) => Err(Self::Error::custom("declined: a number out of range")),
            },
            _ => Err(Self::Error::custom("declined: not a plain scalar")),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if self.0 == "null" {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::Error as _;
        // Unit variants written as a string; serde_json also takes `{"variant": null}`, which the shape refuses.
        match self.0.as_bytes() {
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => visitor.visit_enum(
                serde::de::value::BorrowedStrDeserializer::new(&self.0[1..self.0.len() - 1]),
            ),
            _ => Err(Self::Error::custom("declined: not a plain string")),
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    // A member the type does not know (tolerated behind the edge): already validated, whatever it holds.
    fn deserialize_ignored_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}
