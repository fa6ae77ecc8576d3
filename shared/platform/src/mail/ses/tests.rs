use aws_sdk_sesv2::error::{ConnectorError, ErrorMetadata};
use aws_sdk_sesv2::types::error::{
    AccountSuspendedException, BadRequestException, LimitExceededException,
    MailFromDomainNotVerifiedException, MessageRejected, NotFoundException, SendingPausedException,
    TooManyRequestsException,
};

use super::*;

fn generic(code: &str) -> SendEmailError {
    SendEmailError::generic(ErrorMetadata::builder().code(code).build())
}

#[test]
fn throttling_quotas_and_server_errors_are_retried() {
    let retried = [
        (
            SendEmailError::TooManyRequestsException(TooManyRequestsException::builder().build()),
            429,
        ),
        (
            SendEmailError::LimitExceededException(LimitExceededException::builder().build()),
            400,
        ),
        (generic("Throttling"), 400),
        (generic("ThrottlingException"), 400),
        (generic("ExpiredTokenException"), 403),
        (generic("SomethingNew"), 503),
        (generic("SomethingNew"), 429),
    ];
    for (err, status) in &retried {
        assert!(
            service_error_is_retryable(err, *status),
            "{:?} ({status}) should be retried",
            err.code()
        );
    }
}

#[test]
fn rejections_and_a_broken_setup_are_permanent() {
    let permanent = [
        (
            SendEmailError::MessageRejected(MessageRejected::builder().build()),
            400,
        ),
        (
            SendEmailError::MailFromDomainNotVerifiedException(
                MailFromDomainNotVerifiedException::builder().build(),
            ),
            400,
        ),
        (
            SendEmailError::AccountSuspendedException(AccountSuspendedException::builder().build()),
            400,
        ),
        (
            SendEmailError::SendingPausedException(SendingPausedException::builder().build()),
            400,
        ),
        (
            SendEmailError::NotFoundException(NotFoundException::builder().build()),
            404,
        ),
        (
            SendEmailError::BadRequestException(BadRequestException::builder().build()),
            400,
        ),
        (generic("AccessDeniedException"), 403),
        (generic("SomethingNew"), 400),
    ];
    for (err, status) in &permanent {
        assert!(
            !service_error_is_retryable(err, *status),
            "{:?} ({status}) should be permanent",
            err.code()
        );
    }
}

#[test]
fn transport_failures_are_retried_and_unbuildable_requests_are_not() {
    type E = SdkError<SendEmailError, HttpResponse>;
    assert!(is_retryable(&E::timeout_error("operation timed out")));
    assert!(is_retryable(&E::dispatch_failure(ConnectorError::io(
        "connection reset".into()
    ))));
    assert!(!is_retryable(&E::construction_failure("no destination")));
}

#[test]
fn tag_values_keep_only_the_allowed_characters_and_can_be_read_back() {
    assert_eq!(tag_value("signups_welcome_U1"), "signups_welcome_U1");
    assert_eq!(
        tag_value("signups:welcome:usr-1"),
        "signups-3Awelcome-3Ausr-2D1"
    );
    assert_eq!(tag_value("é"), "-C3-A9");
    for key in [
        "notifications:0193ab:payment.processed",
        "a b/c+d=e",
        "ünïcödé",
        "",
    ] {
        let v = tag_value(key);
        assert!(
            !v.is_empty()
                && v.len() <= MAX_TAG_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{key:?} → {v:?}"
        );
    }
    // Too long to encode: a hash, which no encoding can be (`-s` is no escape), different per key.
    let (a, b) = ("k".repeat(300), format!("{}x", "k".repeat(299)));
    assert_eq!(tag_value(&a).len(), "-sha256-".len() + 64);
    assert!(tag_value(&a).starts_with("-sha256-"));
    assert_ne!(tag_value(&a), tag_value(&b));
    assert_eq!(tag_value(&"k".repeat(256)), "k".repeat(256));
}

#[test]
fn the_header_carries_the_key_itself_when_it_can() {
    assert_eq!(
        header_value("signups:welcome:usr_1"),
        "signups:welcome:usr_1"
    );
    assert_eq!(header_value("a\r\nBcc: x"), tag_value("a\r\nBcc: x"));
}

#[test]
fn mail_records_are_the_consumers_own_and_apart_from_event_records() {
    let k = record_key("signups", "signups:welcome:usr_1");
    assert_eq!(k, "signups#mail signups:welcome:usr_1");
    assert!(k.starts_with("signups#"));
    // Event records are `{consumer}#event {source} {id}`: no event record can have this key.
    let event = crate::idempotency::event_key("signups", "mail", "signups:welcome:usr_1");
    assert_ne!(k, event);
    assert!(event.starts_with("signups#event "));
}
