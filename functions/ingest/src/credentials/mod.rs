//! The kinds of credential, each read and verified on its own: API keys ([`api_key`]), Standard Webhooks
//! signatures ([`webhook`]) and the AWS IAM caller the HTTP API verified ([`iam`]). Which one a request uses,
//! and for which source, is [`crate::auth`]'s decision.

pub mod iam;
pub mod webhook;

/// API keys are shared with the query API's readers: they live in the platform.
pub use tubes_platform::api_key;
pub use tubes_platform::api_key::is_name;
