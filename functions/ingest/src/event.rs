//! The invocation as the deployed function receives it: an HTTP API (payload format 2.0) event, which function
//! URLs and `cargo lambda watch` send too, and the answer API Gateway reads back.
//!
//! Only what ingest reads is kept: the path, the method, the stage, the IAM authorizer's caller, the headers of
//! [`READ_HEADERS`], the body. Everything else in the event (the request context's other members, query strings,
//! cookies, the other headers) is skipped without being built, so an invocation costs little more than the events
//! it carries (`make bench ARGS=invocation`, against a full `ApiGatewayV2httpRequest` parse).

use std::borrow::Cow;
use std::fmt;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::http::header::HeaderName;
use lambda_http::http::{HeaderMap, HeaderValue, Method};
use lambda_http::{Body, Response};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

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

/// The answer to an HTTP API event (payload format 2.0), as `lambda_http` would have written it for `response`.
pub fn answer(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = parts.headers;
    answer.is_base64_encoded = matches!(body, Body::Binary(_));
    answer.body = match body {
        Body::Empty => None,
        body => Some(body),
    };
    answer
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
                    Some(name) => {
                        for value in map.next_value::<Values>()?.0 {
                            let value = HeaderValue::from_str(&value).map_err(de::Error::custom)?;
                            headers.append(name.clone(), value);
                        }
                    }
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
                        .find(|read| read.eq_ignore_ascii_case(name))
                        .map(|read| HeaderName::from_static(read)),
                ))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A header's values: one string (the format's), or a list of them.
struct Values(Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Values;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value or a list of them")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Values, E> {
                Ok(Values(vec![value.to_owned()]))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Values, E> {
                Ok(Values(vec![value]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Values, E> {
                Ok(Values(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Values(values))
            }
        }
        deserializer.deserialize_any(V)
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
