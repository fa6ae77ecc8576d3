//! What went wrong.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// An AWS call failed.
    #[error("{message}")]
    Aws {
        /// The call.
        operation: &'static str,
        /// The call and the SDK's error, with its context.
        message: String,
    },
    /// A message cannot be redriven (its records are gone, its body is not one of ours).
    #[error("message {id}: {reason}")]
    Message {
        /// The SQS message id.
        id: String,
        /// Why.
        reason: String,
    },
    /// No queue has this name or URL.
    #[error("queue {queue} not found (tubes-dlq list names the dead-letter queues)")]
    QueueNotFound {
        /// The name or URL given.
        queue: String,
    },
    /// The queue holds no message with this id (or it is out of sight: being redriven elsewhere).
    #[error("no message {id} on {queue} (tubes-dlq list {queue} names its messages)")]
    MessageNotFound {
        /// The queue, as given.
        queue: String,
        /// The SQS message id given.
        id: String,
    },
    /// The function to redrive to does not exist (nothing was redriven to it).
    #[error(
        "function {function} not found: name the consumer's function (locally its binary, \
         e.g. tubes-consumer-signups)"
    )]
    FunctionNotFound {
        /// The name given.
        function: String,
    },
}

/// A failed AWS call, described the one way ([`tubes_platform::aws::describe`]).
pub(crate) fn aws<E: std::error::Error>(operation: &'static str, err: E) -> OpsError {
    OpsError::Aws {
        operation,
        message: tubes_platform::aws::describe(operation, err),
    }
}
