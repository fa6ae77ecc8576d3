//! One way to describe a failed AWS call, for every adapter and tool: the operation and the error's whole chain
//! ([`describe`]), or, for services whose messages may quote personal data, the error code, HTTP status and
//! request id only ([`describe_code`]).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;

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
    fn the_whole_chain_is_named() {
        let err = Outer(std::io::Error::other("connection refused"));
        let text = super::describe("PutItem", err);
        assert!(text.starts_with("PutItem: outer"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}
