//! The invocation as the deployed function receives it: an HTTP API (payload format 2.0) event, which function
//! URLs and `cargo lambda watch` send too, and the answer API Gateway reads back.
//!
//! Only what ingest reads is kept: the path, the method, the stage, the IAM authorizer's caller, the headers of
//! [`READ_HEADERS`], the body. Everything else in the event (the request context's other members, query strings,
//! cookies, the other headers) is skipped without being built, so an invocation costs little more than the events
//! it carries (`make bench ARGS=invocation`, against a full `ApiGatewayV2httpRequest` parse).

use std::borrow::Cow;
use std::fmt;

use lambda_http::http::header::HeaderName;
use lambda_http::http::{HeaderMap, HeaderValue, Method};
use lambda_http::{Body, Response};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::credentials::webhook;
use crate::error::IngestError;
use crate::http::Incoming;

/// The request headers ingest reads (the media type, the credentials, the idempotency key, the trace); the
/// others are not kept. A header read anywhere in ingest must be listed here, or invocations never see it.
pub const READ_HEADERS: [&str; 7] = [
    "content-type",
    "authorization",
    webhook::ID_HEADER,
    webhook::TIMESTAMP_HEADER,
    webhook::SIGNATURE_HEADER,
    crate::idempotency_key::HEADER,
    tubes_contract::trace::TRACEPARENT,
];

/// An HTTP API (payload format 2.0) event, as much of it as ingest reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    /// The path as the client sent it (with a named stage's prefix).
    #[serde(default)]
    pub raw_path: Option<String>,
    /// The headers of [`READ_HEADERS`] the request carried.
    #[serde(default, deserialize_with = "read_headers")]
    pub headers: HeaderMap,
    /// Who called, how, through which stage. Required: every HTTP API and function URL event has one, and an
    /// invocation without it (a Kinesis batch redriven to the wrong function, a test event) must be a function
    /// error, not a 404 answered as a success.
    pub request_context: RequestContext,
    /// The body: text, or base64 if [`HttpApiEvent::is_base64_encoded`].
    #[serde(default)]
    pub body: Option<String>,
    /// Whether API Gateway encoded the body (it does for a body it does not take for text).
    #[serde(default, deserialize_with = "nullish")]
    pub is_base64_encoded: bool,
}

/// The event's `requestContext`, as much of it as ingest reads.
#[derive(Debug, Default, Deserialize)]
pub struct RequestContext {
    /// The method and path.
    #[serde(default)]
    pub http: HttpDescription,
    /// The stage (`$default`: no prefix in the path).
    #[serde(default)]
    pub stage: Option<String>,
    /// What the route's authorizer verified, if it has one.
    #[serde(default)]
    pub authorizer: Option<Authorizer>,
}

/// `requestContext.http`.
#[derive(Debug, Default, Deserialize)]
pub struct HttpDescription {
    /// The request method.
    #[serde(default, deserialize_with = "method")]
    pub method: Method,
    /// The path (what `rawPath` says, for an event without one).
    #[serde(default)]
    pub path: Option<String>,
}

/// `requestContext.authorizer`: only the IAM authorizer's caller is read.
#[derive(Debug, Default, Deserialize)]
pub struct Authorizer {
    /// What the IAM authorizer verified.
    #[serde(default)]
    pub iam: Option<IamCaller>,
}

/// `requestContext.authorizer.iam`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamCaller {
    /// The caller's ARN.
    #[serde(default)]
    pub user_arn: Option<String>,
}

impl HttpApiEvent {
    /// The body as bytes: borrowed, or decoded when API Gateway sent it base64 encoded. `Err` if that base64 is
    /// broken (API Gateway never sends it).
    pub fn body_bytes(&self) -> Result<Cow<'_, [u8]>, IngestError> {
        use base64::Engine as _;
        match self.body.as_deref() {
            None => Ok(Cow::Borrowed(&[])),
            Some(text) if !self.is_base64_encoded => Ok(Cow::Borrowed(text.as_bytes())),
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Cow::Owned)
                .map_err(|e| {
                    IngestError::Internal(format!("the event's base64 body does not decode: {e}"))
                }),
        }
    }

    /// The request this event carries, its body `body` ([`HttpApiEvent::body_bytes`]).
    pub fn incoming<'r>(&'r self, body: &'r [u8]) -> Incoming<'r> {
        let ctx = &self.request_context;
        // `rawPath` is what the client sent; an event without one names the path only in its context.
        let raw = self
            .raw_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .or(ctx.http.path.as_deref())
            .unwrap_or_default();
        Incoming {
            method: &ctx.http.method,
            path: crate::http::without_stage(raw, ctx.stage.as_deref()),
            headers: &self.headers,
            body,
            iam_caller: ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.as_deref()),
        }
    }
}

/// The answer to an HTTP API event (payload format 2.0): what API Gateway reads back, and nothing it ignores.
///
/// It serialises as `aws_lambda_events`' `ApiGatewayV2httpResponse` does (a test compares the two, and reads the
/// answer back as one), less the empty `multiValueHeaders` ingest never sets, and without copying each header
/// value to a `String` first: the answer is part of every request's cost (`make bench ARGS=invocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status_code: u16,
    /// The headers: each name once, with its first value (as `ApiGatewayV2httpResponse` writes them).
    pub headers: HeaderMap,
    /// The body; `None` for none.
    pub body: Option<Body>,
    /// Whether `body` is binary (written in base64).
    pub is_base64_encoded: bool,
}

/// The answer to an HTTP API event for `response`, as `lambda_http` would have written it.
pub fn answer(response: Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status_code: parts.status.as_u16(),
        headers: parts.headers,
        is_base64_encoded: matches!(body, Body::Binary(_)),
        body: match body {
            Body::Empty => None,
            body => Some(body),
        },
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The headers as a JSON object, values borrowed.
        struct Headers<'a>(&'a HeaderMap);
        impl Serialize for Headers<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.keys_len()))?;
                for name in self.0.keys() {
                    let value =
                        std::str::from_utf8(self.0[name].as_bytes()).map_err(ser::Error::custom)?;
                    map.serialize_entry(name.as_str(), value)?;
                }
                map.end()
            }
        }
        let members = 4 + usize::from(self.body.is_some());
        let mut answer = serializer.serialize_struct("Answer", members)?;
        answer.serialize_field("statusCode", &self.status_code)?;
        answer.serialize_field("headers", &Headers(&self.headers))?;
        match &self.body {
            // Text as it is: `Body`'s own serialisation checks its UTF-8 again.
            Some(Body::Text(text)) => answer.serialize_field("body", text)?,
            Some(body) => answer.serialize_field("body", body)?,
            None => {}
        }
        answer.serialize_field("isBase64Encoded", &self.is_base64_encoded)?;
        // Always empty (ingest sets no cookie), and written: `aws_lambda_events`' response type, which
        // `cargo lambda watch` reads answers with, requires the member.
        answer.serialize_field("cookies", &[(); 0])?;
        answer.end()
    }
}

/// Reads the headers of [`READ_HEADERS`] out of the event's `headers` object and skips the others unbuilt.
fn read_headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderMap, D::Error> {
    struct Read;
    impl<'de> Visitor<'de> for Read {
        type Value = HeaderMap;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of header names and values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<HeaderMap, E> {
            Ok(HeaderMap::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<HeaderMap, E> {
            Ok(HeaderMap::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<HeaderMap, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderMap, A::Error> {
            let mut headers = HeaderMap::new();
            while let Some(Name(name)) = map.next_key()? {
                match name {
                    Some(name) => map.next_value_seed(Append {
                        headers: &mut headers,
                        name,
                    })?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(headers)
        }
    }
    deserializer.deserialize_option(Read)
}

/// [`READ_HEADERS`] as header names, made once: a name made from a string is parsed again each time.
const READ_NAMES: [HeaderName; READ_HEADERS.len()] = [
    HeaderName::from_static(READ_HEADERS[0]),
    HeaderName::from_static(READ_HEADERS[1]),
    HeaderName::from_static(READ_HEADERS[2]),
    HeaderName::from_static(READ_HEADERS[3]),
    HeaderName::from_static(READ_HEADERS[4]),
    HeaderName::from_static(READ_HEADERS[5]),
    HeaderName::from_static(READ_HEADERS[6]),
];

/// A header name: `Some` if ingest reads it ([`READ_HEADERS`]), compared without allocating.
struct Name(Option<HeaderName>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(Name(
                    READ_HEADERS
                        .iter()
                        .position(|read| read.eq_ignore_ascii_case(name))
                        .map(|i| READ_NAMES[i].clone()),
                ))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A header's values (one string, the format's, or a list of them), appended under `name` as they are read.
struct Append<'h> {
    headers: &'h mut HeaderMap,
    name: HeaderName,
}

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a header value or a list of them")
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        let value = HeaderValue::from_str(value).map_err(E::custom)?;
        self.headers.append(self.name, value);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Cow<'_, str>>()? {
            let value = HeaderValue::from_str(&value).map_err(de::Error::custom)?;
            self.headers.append(self.name.clone(), value);
        }
        Ok(())
    }
}

/// A method name (`POST`) as a [`Method`].
fn method<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Method, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Method;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an HTTP method")
        }
        fn visit_str<E: de::Error>(self, name: &str) -> Result<Method, E> {
            Method::from_bytes(name.as_bytes()).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(V)
}

/// A boolean that may be `null` (false).
fn nullish<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event(headers: &str) -> Result<HttpApiEvent, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"rawPath":"/events","headers":{headers},"requestContext":{{"http":{{"method":"POST"}}}}}}"#
        ))
    }

    #[test]
    fn only_the_read_headers_are_kept_whatever_their_case_one_value_or_a_list() {
        let e = event(
            r#"{"Content-Type":"application/json","x-other":"skipped","Idempotency-Key":["k1","k2"],
                "authorization":null,"traceparent":[],"webhook-id":"msg_\u0031"}"#,
        )
        .unwrap();
        let h = &e.headers;
        assert_eq!(h.len(), 4, "{h:?}");
        assert_eq!(h["content-type"], "application/json");
        let keys: Vec<_> = h.get_all("idempotency-key").iter().collect();
        assert_eq!(keys, ["k1", "k2"]);
        assert_eq!(h["webhook-id"], "msg_1");
        assert!(!h.contains_key("x-other") && !h.contains_key("authorization"));
        assert!(!h.contains_key("traceparent"));
        assert!(event("null").unwrap().headers.is_empty());
    }

    #[test]
    fn a_read_header_whose_value_is_not_a_header_value_is_refused() {
        let err = event(r#"{"content-type":"application/json\n"}"#).unwrap_err();
        assert!(err.to_string().contains("header value"), "{err}");
        assert!(event(r#"{"content-type":7}"#).is_err());
    }
}
