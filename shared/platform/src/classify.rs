//! Whether an error may go away on a retry: the one question the harness asks of every failure. It stands alone
//! (as aws-lambda-rust-runtime keeps `Diagnostic` apart from its runtime) so that any port's error can answer it
//! without importing what drives the port.

use std::convert::Infallible;

/// Whether an error may go away on a retry.
pub trait Classify {
    /// `true`: retry the record later (the shard waits for it). `false`: dead-letter it and move on.
    fn is_retryable(&self) -> bool;
}

/// A consumer that cannot fail.
impl Classify for Infallible {
    fn is_retryable(&self) -> bool {
        match *self {}
    }
}
