//! The kinds of credential, each read and verified on its own: API keys ([`api_key`]), Standard Webhooks
//! signatures ([`webhook`]) and the AWS IAM caller the HTTP API verified ([`iam`]). Which one a request uses,
//! and for which source, is [`crate::auth`]'s decision.

pub mod api_key;
pub mod iam;
pub mod webhook;

/// Whether `name` is a source name or a key id: 1 to `max` of `a-z 0-9 - _`.
pub fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
