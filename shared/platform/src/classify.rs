//! Whether an error may go away on a retry, and whether it is a dependency's failure rather than the record's:
//! the two questions the harness asks of every failure. It stands alone (as aws-lambda-rust-runtime keeps
//! `Diagnostic` apart from its runtime) so that any port's error can answer them without importing what drives
//! the port.

use std::convert::Infallible;
use std::fmt;

/// Whether an error may go away on a retry.
pub trait Classify {
    /// `true`: retry the record later (the shard waits for it). `false`: dead-letter it and move on.
    fn is_retryable(&self) -> bool;

    /// The dependency that failed, when the failure is one of a store or service the consumer relies on (it did
    /// not answer, answered 5xx, or throttled) rather than of this record. The harness counts these across
    /// records in a circuit breaker per dependency and never parks a record for them (see
    /// [`harness`](crate::harness)). `None` (the default): this record's own failure.
    fn dependency(&self) -> Option<Dependency> {
        None
    }
}

/// A consumer that cannot fail.
impl Classify for Infallible {
    fn is_retryable(&self) -> bool {
        match *self {}
    }
}

/// A dependency a consumer relies on: one circuit breaker each. Ports name themselves (a port is one
/// dependency, whatever its backend); a consumer with a dependency of its own names it with
/// [`Dependency::named`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dependency(&'static str);

impl Dependency {
    /// The idempotency records ([`idempotency`](crate::idempotency)).
    pub const IDEMPOTENCY: Dependency = Dependency("idempotency store");
    /// The e-mail port ([`mail`](crate::mail)).
    pub const MAIL: Dependency = Dependency("mail");
    /// The users directory ([`users`](crate::users)).
    pub const USERS: Dependency = Dependency("users directory");
    /// The event stream a consumer publishes to ([`publish`](crate::publish)).
    pub const STREAM: Dependency = Dependency("event stream");
    /// The dead-letter port ([`dead_letters`](crate::dead_letters)).
    pub const DEAD_LETTERS: Dependency = Dependency("dead letters");
    /// The event store's objects ([`archive`](crate::archive)).
    pub const ARCHIVE: Dependency = Dependency("event store");
    /// The read models ([`read_model`](crate::read_model)).
    pub const READ_MODELS: Dependency = Dependency("read models");

    /// A dependency of a consumer's own (a ledger, a partner's API).
    pub const fn named(name: &'static str) -> Self {
        Dependency(name)
    }

    /// Its name, as logs show it.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
