//! AWS IAM (SigV4) for producers inside AWS. On its own route, the HTTP API's IAM authorizer verifies the
//! signature and puts the caller in the request context (`requestContext.authorizer.iam.userArn`); ingest only
//! maps that principal to a source. A request without that context is not an IAM request, whatever its path: the
//! context is written by API Gateway, never by the client.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The caller API Gateway's IAM authorizer verified, if this request went through it.
pub fn caller(request: &Request) -> Option<&str> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.iam.as_ref()?.user_arn.as_deref()
        }
        _ => None,
    }
}

/// Whether `arn` names an IAM role or user: `arn:{partition}:iam::{account}:role/{path/}name` or `…:user/…`.
pub fn is_principal_arn(arn: &str) -> bool {
    principal(arn).is_some() && arn.split(':').nth(2) == Some("iam")
}

/// `(account, kind, name)` of an IAM role or user ARN, or of the STS assumed-role ARN a role's session calls
/// with (`arn:aws:sts::{account}:assumed-role/{name}/{session}`: the role's path is not in it).
fn principal(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if prefix != "arn"
        || !region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (kind, rest) = resource.split_once('/')?;
    let name = match (service, kind) {
        ("iam", "role" | "user") => rest.rsplit('/').next()?,
        ("sts", "assumed-role") => rest.split('/').next()?,
        _ => return None,
    };
    let kind = if kind == "assumed-role" { "role" } else { kind };
    (!name.is_empty()).then_some((account, kind, name))
}

/// Whether the configured principal `configured` (a role or user ARN) is the caller `caller` (as API Gateway
/// reports it: a user ARN, or the assumed-role ARN of a role's session).
pub fn same_principal(configured: &str, caller: &str) -> bool {
    match (principal(configured), principal(caller)) {
        (Some(a), Some(b)) => a == b && is_principal_arn(configured),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_matches_its_sessions_and_a_user_itself() {
        let role = "arn:aws:iam::123456789012:role/producers/shop-producer";
        assert!(is_principal_arn(role));
        assert!(same_principal(
            role,
            "arn:aws:sts::123456789012:assumed-role/shop-producer/i-0abc"
        ));
        assert!(!same_principal(
            role,
            "arn:aws:sts::210987654321:assumed-role/shop-producer/i-0abc"
        ));
        assert!(!same_principal(
            role,
            "arn:aws:sts::123456789012:assumed-role/other/i-0abc"
        ));
        let user = "arn:aws:iam::123456789012:user/ci";
        assert!(same_principal(user, user));
        assert!(!same_principal(user, "arn:aws:iam::123456789012:role/ci"));
    }

    #[test]
    fn only_roles_and_users_can_be_configured() {
        for bad in [
            "",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:group/admins",
            "arn:aws:iam::12345:role/x",
            "arn:aws:s3:::bucket/role",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(!is_principal_arn(bad), "{bad}");
        }
        // A session is what calls, not what is configured.
        let session = "arn:aws:sts::123456789012:assumed-role/shop/i-0abc";
        assert!(!same_principal(session, session));
    }
}
