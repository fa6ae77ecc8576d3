//! Who is sending. Every request that writes carries a credential, and the credential names its source; the
//! answer to a request without one is `401` with `WWW-Authenticate`, and nothing is written. Three kinds:
//!
//! - an API key ([`api_key`](crate::credentials::api_key)): `Authorization: Bearer tubes_{source}.{key id}.{secret}`, on `POST /events` or its
//!   source's own route;
//! - a Standard Webhooks signature ([`webhook`](crate::credentials::webhook)) on `POST /sources/{source}/events` (or on `POST /events` for the
//!   configured default source); a signed request's `webhook-id` becomes its events' ids;
//! - AWS IAM ([`iam`](crate::credentials::iam)): SigV4, verified by the HTTP API's IAM authorizer on `POST /iam/events`; the caller's
//!   principal names the source.
//!
//! An `open` source (local development only, see [`crate::sources`]) takes requests without any. A credential of
//! one source on another source's route is `403`.

use lambda_http::http::HeaderMap;

use crate::credentials::api_key::ApiKey;
use crate::credentials::webhook::{self, SignatureError};
use crate::sources::{Registry, Source};

/// Where a request was sent, as far as authentication cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    /// `POST /events`: the API key's source, or the default source.
    Events,
    /// `POST /sources/{name}/events`.
    Source(&'p str),
    /// `POST /iam/events`: the IAM authorizer's caller.
    Iam,
}

/// How a request proved its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A valid API key.
    ApiKey,
    /// A valid Standard Webhooks signature.
    Signature,
    /// A caller verified by the IAM authorizer.
    Iam,
    /// None: the source is open (local development).
    Open,
}

impl Credential {
    /// As logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::ApiKey => "api_key",
            Credential::Signature => "signature",
            Credential::Iam => "iam",
            Credential::Open => "open",
        }
    }
}

/// A request whose source is known.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated<'s, 'r> {
    /// The source it comes from.
    pub source: &'s Source,
    /// How it proved it.
    pub credential: Credential,
    /// The verified `webhook-id`, if it was signed.
    pub webhook_id: Option<&'r str>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential at all, for a source that needs one.
    #[error("this route needs a credential: an API key (Authorization: Bearer …), a Standard Webhooks signature or AWS IAM")]
    MissingCredentials,
    /// An `Authorization` header that is no valid key of any source.
    #[error("the API key is not valid")]
    InvalidApiKey,
    /// A well-formed key whose source or key id is not configured (yet): the caller re-reads the sources once, then
    /// answers [`AuthError::InvalidApiKey`].
    #[error("the API key is not valid")]
    UnknownKey,
    /// The signature is missing, stale or wrong.
    #[error("{0}")]
    Signature(SignatureError),
    /// A valid credential of source `credential`, on the route of source `route`.
    #[error("this credential belongs to another source than {route}")]
    AnotherSource {
        /// The source of the route.
        route: String,
    },
    /// A caller the IAM authorizer verified, whom no source lists.
    #[error("this IAM principal sends as no source")]
    IamPrincipalNotAllowed,
    /// `/sources/{name}/events` names no configured source.
    #[error("no such source")]
    UnknownSource,
}

impl AuthError {
    /// Whether the answer is `403` (authenticated, not allowed here) rather than `401`.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            AuthError::AnotherSource { .. } | AuthError::IamPrincipalNotAllowed
        )
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::InvalidApiKey | AuthError::UnknownKey => "invalid_api_key",
            AuthError::Signature(e) => e.code(),
            AuthError::AnotherSource { .. } => "credential_for_another_source",
            AuthError::IamPrincipalNotAllowed => "iam_principal_not_allowed",
            AuthError::UnknownSource => "unknown_source",
        }
    }

    /// The part of the request at fault, as a JSON pointer into it (`/headers/authorization`, `/path/source`).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingCredentials | AuthError::InvalidApiKey | AuthError::UnknownKey => {
                Some("/headers/authorization")
            }
            AuthError::Signature(e) => Some(match e.field() {
                webhook::ID_HEADER => "/headers/webhook-id",
                webhook::TIMESTAMP_HEADER => "/headers/webhook-timestamp",
                _ => "/headers/webhook-signature",
            }),
            AuthError::AnotherSource { .. } | AuthError::UnknownSource => Some("/path/source"),
            AuthError::IamPrincipalNotAllowed => None,
        }
    }

    /// The `WWW-Authenticate` challenge of a `401`: the schemes that would have been accepted.
    pub fn challenge(&self) -> &'static str {
        match self {
            AuthError::Signature(_) => "Webhook-Signature",
            AuthError::InvalidApiKey | AuthError::UnknownKey => {
                r#"Bearer realm="tubes", error="invalid_token""#
            }
            _ => r#"Bearer realm="tubes", Webhook-Signature"#,
        }
    }
}

/// What authentication reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    /// Where it was sent.
    pub route: Route<'r>,
    /// The principal the IAM authorizer verified ([`crate::credentials::iam::caller`]), if it went through it.
    pub iam_caller: Option<&'r str>,
    /// Its headers.
    pub headers: &'r HeaderMap,
    /// Its body, as received (signatures cover these bytes).
    pub body: &'r [u8],
    /// Seconds since the Unix epoch.
    pub now: i64,
}

impl<'r> Request<'r> {
    /// Authenticates this request against `registry`; `default_source` is the source of signed (or, if it is
    /// open, credential-less) requests on `POST /events`.
    pub fn authenticate<'s>(
        &self,
        registry: &'s Registry,
        default_source: Option<&str>,
    ) -> Result<Authenticated<'s, 'r>, AuthError> {
        let Request {
            route,
            iam_caller,
            headers,
            body,
            now,
        } = *self;
        // The route's own source, if it names one: an unknown one is unknown whoever asks.
        let routed = match route {
            Route::Source(name) => Some(registry.get(name).ok_or(AuthError::UnknownSource)?),
            Route::Events | Route::Iam => None,
        };
        let on_route = |source: &'s Source| match routed {
            Some(r) if r.name != source.name => Err(AuthError::AnotherSource {
                route: r.name.clone(),
            }),
            _ => Ok(source),
        };
        let signed = webhook::is_signed(headers);

        let (source, credential) = if let Some(caller) = iam_caller {
            let source = registry
                .by_principal(caller)
                .ok_or(AuthError::IamPrincipalNotAllowed)?;
            (on_route(source)?, Credential::Iam)
        } else if route == Route::Iam {
            // The IAM route without the authorizer's caller (locally, or misrouted): no credential was verified.
            return Err(AuthError::MissingCredentials);
        } else if let Some(presented) = ApiKey::from_authorization(
            headers
                .get(lambda_http::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ) {
            let key = presented.ok_or(AuthError::InvalidApiKey)?;
            let source = registry.get(key.source).ok_or(AuthError::UnknownKey)?;
            let stored = source
                .api_keys
                .get(key.key_id)
                .ok_or(AuthError::UnknownKey)?;
            if !key.matches(stored) {
                return Err(AuthError::InvalidApiKey);
            }
            (on_route(source)?, Credential::ApiKey)
        } else {
            let source = match routed {
                Some(source) => source,
                None => match default_source.and_then(|name| registry.get(name)) {
                    Some(source) => source,
                    None if signed => {
                        return Err(AuthError::Signature(SignatureError::NotConfigured))
                    }
                    None => return Err(AuthError::MissingCredentials),
                },
            };
            match (signed, source.open) {
                (true, _) => (source, Credential::Signature),
                (false, true) => (source, Credential::Open),
                (false, false) => return Err(AuthError::MissingCredentials),
            }
        };
        // A signed request is verified whatever else it carries: its webhook-id becomes the event ids.
        let webhook_id = if signed {
            Some(
                webhook::verify(&source.signing_secrets, headers, body, now)
                    .map_err(AuthError::Signature)?,
            )
        } else {
            None
        };
        Ok(Authenticated {
            source,
            credential,
            webhook_id,
        })
    }
}

#[cfg(test)]
mod tests;
