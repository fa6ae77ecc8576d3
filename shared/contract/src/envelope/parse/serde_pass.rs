//! The serde_json pass over an event: every event it reads, every violation in its words. It runs when the fast
//! pass ([`super::scan`]) declines; a valid event decodes to the same envelope either way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::{attr_slot, check_extension, duplicate, Attr, Data, IdIfAbsent, Raw};
use crate::envelope::Envelope;
use crate::violation::{from_serde, Code, Violation, Violations};

/// The serde_json pass: every event, every violation in its words.
pub(in crate::envelope) fn parse_serde(
    text: &str,
    received_at: Option<OffsetDateTime>,
    id_if_absent: IdIfAbsent<'_>,
) -> Result<Envelope, Violations> {
    let mut raw: Raw<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(err) if err.is_data() => {
            return Err(Violations::one(Violation::whole(
                Code::NotAnObject,
                "an event must be a JSON object",
            )))
        }
        Err(err) => return Err(Violations::one(from_serde(String::new(), &err))),
    };
    raw.make_envelope(received_at, id_if_absent)
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawVisitor(std::marker::PhantomData))
    }
}

struct RawVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
    type Value = Raw<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudEvents JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'a>, A::Error> {
        let mut raw = Raw::default();
        let mut seen_data = false;
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            if let Some(i) = attr_slot(&key) {
                let value = map.next_value::<AttrValue<'de>>()?.0;
                if raw.attrs[i].is_some() {
                    raw.violations.push(duplicate(&key));
                } else {
                    raw.attrs[i] = value;
                }
            } else if key == "data" {
                let value = map.next_value::<DataValue<'de>>()?;
                if seen_data {
                    raw.violations.push(duplicate("data"));
                }
                seen_data = true;
                raw.data = value.0;
            } else if key == "data_base64" {
                map.next_value::<IgnoredAny>()?;
                raw.violations.push(Violation::at(
                    Code::UnsupportedDataContentType,
                    "/data_base64",
                    "binary data is not accepted; send JSON in `data`",
                ));
            } else {
                let value = map.next_value::<serde_json::Value>()?;
                check_extension(&mut raw, key, value);
            }
        }
        Ok(raw)
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V(std::marker::PhantomData))
    }
}

/// The value of `data`: an object's members captured raw (their names borrowed where they can be), `null` as
/// good as absent, anything else remembered as such.
struct DataValue<'a>(Option<Data<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for DataValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = DataValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(16));
                while let Some(CowStr(name)) = map.next_key::<CowStr<'de>>()? {
                    members.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(DataValue(Some(Data::Object(members))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(DataValue(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DataValue(Some(Data::Other)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataValue(Some(Data::Other)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(DataValue(Some(Data::Other)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(DataValue(Some(Data::Other)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(DataValue(Some(Data::Other)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(DataValue(Some(Data::Other)))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Any JSON value in an attribute's place: a string is kept, anything else is remembered by its kind.
struct AttrValue<'a>(Option<Attr<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for AttrValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = AttrValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Str(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Str(Cow::Owned(v.to_owned())))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Str(Cow::Owned(v)))))
            }
            // `null` means absent for optional attributes; required ones then report `missing_field`.
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(AttrValue(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Other("a boolean"))))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Other("a number"))))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Other("a number"))))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AttrValue(Some(Attr::Other("a number"))))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AttrValue(Some(Attr::Other("an array"))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AttrValue(Some(Attr::Other("an object"))))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}
