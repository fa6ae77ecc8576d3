//! What every AWS adapter needs when a call fails: one line naming the operation and the error's whole chain.

/// `"{operation}: {error and its sources}"`. An SDK error's own `Display` says only "service error" or
/// "dispatch failure"; the chain says which service error (its code and message) or which connection failed.
pub fn describe<E: std::error::Error>(operation: &str, err: E) -> String {
    // The SDKs all re-export the one generic `DisplayErrorContext` of `aws-smithy-types`.
    format!(
        "{operation}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(err)
    )
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
