//! One way to describe a failed AWS call, for every adapter and tool: the operation and the error's whole chain
//! ([`describe`]), or, for services whose messages may quote personal data, the error code, HTTP status and
//! request id only ([`describe_code`]); and one way to read a DynamoDB item's attributes ([`item_text`],
//! [`item_number`]); and the configuration every process loads once ([`config`]).

use std::collections::HashMap;

pub mod config;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item: its attributes by name.
pub type Item = HashMap<String, AttributeValue>;

/// The string attribute `name` of `item`, if it has one.
pub fn item_text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The number attribute `name` of `item` as an integer, if it has one that fits.
pub fn item_number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// `"{operation}: {error and its sources}"`. An SDK error's own `Display` says only "service error" or
/// "dispatch failure"; the chain says which service error (its code and message) or which connection failed.
pub fn describe<E: std::error::Error>(operation: &str, err: E) -> String {
    // The SDKs all re-export the one generic `DisplayErrorContext` of `aws-smithy-types`.
    format!("{operation}: {}", DisplayErrorContext(err))
}

/// `"{operation}: {code} (HTTP {status}, request {id})"` for an error the service answered, without its message
/// (SES's messages may quote an address); [`describe`] for any other failure (a timeout, a connection).
pub fn describe_code<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(e) => format!(
            "{operation}: {} (HTTP {}, request {})",
            e.err().code().unwrap_or("unknown error"),
            e.raw().status().as_u16(),
            err.request_id().unwrap_or("unknown"),
        ),
        _ => describe(operation, err),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn item_attributes_are_read_by_kind() {
        use super::{item_number, item_text, AttributeValue, Item};
        let item: Item = [
            ("s", AttributeValue::S("x".into())),
            ("n", AttributeValue::N("-42".into())),
            ("big", AttributeValue::N("1e40".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(item_text(&item, "s"), Some("x"));
        assert_eq!(item_number(&item, "n"), Some(-42));
        // The wrong kind, a number that is no i64, or no attribute: none.
        assert_eq!(item_text(&item, "n"), None);
        assert_eq!(item_number(&item, "s"), None);
        assert_eq!(item_number(&item, "big"), None);
        assert_eq!(item_text(&item, "missing"), None);
    }

    #[test]
    fn the_whole_chain_is_named() {
        let err = Outer(std::io::Error::other("connection refused"));
        let text = super::describe("PutItem", err);
        assert!(text.starts_with("PutItem: outer"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}
