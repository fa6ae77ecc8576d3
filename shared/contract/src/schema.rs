//! JSON Schemas (draft 2020-12) of the events tubes accepts, generated from the catalogue's types, for producers
//! who want to check an event before sending it. They are committed under `schemas/` (`make schemas` rewrites
//! them; a test fails when they are out of date).
//!
//! The schema functions below are the [`crate::validate`] rules said in JSON Schema; the data types name them in
//! `#[schemars(schema_with = ...)]` next to the same rules in their `Validate` impls. Patterns carry the rules
//! (not `format`, which 2020-12 validators only assert when asked), in plain regular expressions (no lookaround)
//! that most validators read.
//!
//! Some rules cannot be said in a schema and stay the server's alone, which remains the authority: `subject` must
//! equal the data's aggregate id; an amount must be a JSON integer (`1250.0` and `1.25e3` are integers to JSON
//! Schema); a timestamp's date must exist (no 30 February) and its second 60 must be a real leap second; an
//! extension's string value is limited in bytes (the schema counts characters) and an event has at most 32
//! extensions; a member appears once; a `traceparent`'s trace and parent ids may not be all zeros. Where the server is more lenient than the schema (any character between a
//! timestamp's date and time), the schema keeps to RFC 3339.

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Value};

use crate::catalogue::{
    AccountCredited, AccountFrozen, AccountOpened, EventData, EventType, PaymentFailed,
    PaymentFailureReason, PaymentProcessed, PaymentReceived, UserSignedUp, UserUnsubscribed,
    MAX_DESCRIPTION, MAX_LOCALE, MAX_NAME,
};
use crate::envelope::SPECVERSION;
use crate::validate::{CURRENCIES, MAX_AMOUNT_MINOR, MAX_EMAIL_LEN, MAX_ID_LEN, MAX_SOURCE_LEN};

/// Where the schemas are published; each file's `$id` is this followed by its file name.
pub const BASE_ID: &str = "https://schemas.tubes.dev/events/";

/// W3C `traceparent`: version 00 exactly, a later version (not ff) followed by nothing or by `-…`; lower-case hex;
/// spaces and tabs around it are ignored, as the server reads it.
const TRACEPARENT_PATTERN: &str = "^[ \\t]*(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}|(0[1-9a-f]|[1-9a-e][0-9a-f]|f[0-9a-e])-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?)[ \\t]*$";

/// Printable ASCII without whitespace.
const ID_PATTERN: &str = "^[!-~]+$";
/// No control characters, and something other than whitespace.
const TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// [`crate::validate::is_email`]: dot-separated atoms, `@`, two or more DNS labels, an alphabetic (or IDNA) TLD.
const EMAIL_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{0,58}[A-Za-z0-9])$";
/// The part before the `@` (which [`EMAIL_PATTERN`] allows once) is at most 64 characters.
const EMAIL_LOCAL_PATTERN: &str = "^[^@]{1,64}@";
/// RFC 3339 `date-time` as `time` parses it, each field in its range.
const TIMESTAMP_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
/// [`crate::envelope`]'s JSON media types: `application/json`, `text/json`, `application/…+json`, any case,
/// parameters after `;`.
const JSON_MEDIA_TYPE_PATTERN: &str = "^\\s*([Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/([^;]*\\+)?|[Tt][Ee][Xx][Tt]/)[Jj][Ss][Oo][Nn]\\s*(;[\\s\\S]*)?$";

/// An identifier ([`crate::validate::Checker::id`]).
pub fn id(_: &mut SchemaGenerator) -> Schema {
    id_max(MAX_ID_LEN, "An identifier: printable ASCII, no whitespace.")
}

fn id_max(max: usize, description: &str) -> Schema {
    json_schema!({
        "type": "string", "minLength": 1, "maxLength": max, "pattern": ID_PATTERN,
        "description": description
    })
}

/// An optional envelope attribute: `null` is as good as absent.
fn nullable(schema: Schema) -> Value {
    let mut value = schema.to_value();
    value["type"] = json!(["string", "null"]);
    value
}

/// An e-mail address ([`crate::validate::Checker::email`]).
pub fn email(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string", "maxLength": MAX_EMAIL_LEN, "pattern": EMAIL_PATTERN,
        "allOf": [{"pattern": EMAIL_LOCAL_PATTERN}],
        "description": "An e-mail address like name@example.com (ASCII; the part before @ at most 64 characters)."
    })
}

/// An active ISO 4217 code ([`crate::validate::Checker::currency`]).
pub fn currency(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string", "enum": CURRENCIES,
        "description": "An active ISO 4217 currency code, upper case."
    })
}

/// An amount in minor units ([`crate::validate::Checker::amount`]).
pub fn amount(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer", "minimum": 1, "maximum": MAX_AMOUNT_MINOR,
        "description": "Integer minor units of the currency (cents for EUR); a whole number, written without a fraction."
    })
}

/// An optional amount in minor units (`null` or absent: none).
pub fn opt_amount(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["integer", "null"], "minimum": 1, "maximum": MAX_AMOUNT_MINOR,
        "description": "Integer minor units of the currency (cents for EUR); a whole number, written without a fraction."
    })
}

fn text(max: usize, nullable: bool) -> Schema {
    let ty = if nullable {
        json!(["string", "null"])
    } else {
        json!("string")
    };
    json_schema!({
        "type": ty, "minLength": 1, "maxLength": max, "pattern": TEXT_PATTERN,
        "description": "Text without control characters, not only whitespace."
    })
}

/// A display name ([`crate::validate::Checker::text`]).
pub fn name_text(_: &mut SchemaGenerator) -> Schema {
    text(MAX_NAME, false)
}

/// Optional free text ([`crate::validate::Checker::opt_text`]).
pub fn opt_description_text(_: &mut SchemaGenerator) -> Schema {
    text(MAX_DESCRIPTION, true)
}

/// An optional BCP 47 language tag (the catalogue's `is_language_tag`).
pub fn opt_locale(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"], "maxLength": MAX_LOCALE, "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        "description": "A BCP 47 language tag such as en or pt-BR."
    })
}

/// An RFC 3339 timestamp (`time::serde::rfc3339`).
pub fn timestamp(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN,
        "description": "An RFC 3339 timestamp such as 2026-11-22T10:00:00Z or 2026-11-22T11:00:00.250+01:00."
    })
}

/// The schema of one event type's envelope, data included, with [`example`] as its one example.
pub fn event_schema(ty: EventType) -> Value {
    let (data, defs) = crate::catalogue::shape::data_schema(ty);
    let mut schema = envelope(ty.as_str(), data);
    schema["examples"] = json!([example(ty)]);
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

/// One valid event of type `ty` as a producer sends it (a whole envelope, its optional members filled in): the `examples` of its schema, and the sample data of `tubes-dev send`. Built from
/// the catalogue's own types, so a renamed or added member changes it (and a test checks that it still validates).
pub fn example(ty: EventType) -> Value {
    let at = time::macros::datetime!(2026-11-22 10:00:00 UTC);
    let (account, user, email) = ("acc_42", "usr_7", "ada@example.com");
    let (data, subject) = match ty {
        EventType::PaymentReceived => sample(PaymentReceived {
            payment_id: "pay_1".into(),
            account_id: account.into(),
            amount: 1250,
            currency: "EUR".into(),
            payer_email: email.into(),
            description: Some("Invoice 2026-118".into()),
        }),
        EventType::PaymentProcessed => sample(PaymentProcessed {
            payment_id: "pay_1".into(),
            account_id: account.into(),
            amount: 1250,
            currency: "EUR".into(),
            payer_email: email.into(),
            processed_at: at,
        }),
        EventType::PaymentFailed => sample(PaymentFailed {
            payment_id: "pay_1".into(),
            account_id: account.into(),
            amount: 1250,
            currency: "EUR".into(),
            payer_email: email.into(),
            reason: PaymentFailureReason::InsufficientFunds,
            detail: Some("balance 1000, asked 1250".into()),
            failed_at: at,
        }),
        EventType::AccountOpened => sample(AccountOpened {
            account_id: account.into(),
            currency: "EUR".into(),
            per_payment_limit: Some(50_000),
            opened_at: at,
        }),
        EventType::AccountCredited => sample(AccountCredited {
            credit_id: "crd_1".into(),
            account_id: account.into(),
            amount: 5000,
            currency: "EUR".into(),
            credited_at: at,
        }),
        EventType::AccountFrozen => sample(AccountFrozen {
            account_id: account.into(),
            reason: Some("fraud review".into()),
            frozen_at: at,
        }),
        EventType::UserSignedUp => sample(UserSignedUp {
            user_id: user.into(),
            email: email.into(),
            name: "Ada Lovelace".into(),
            locale: Some("en-GB".into()),
            marketing_opt_in: true,
            signed_up_at: at,
        }),
        EventType::UserUnsubscribed => sample(UserUnsubscribed {
            user_id: user.into(),
            email: email.into(),
            list_id: "news".into(),
            reason: Some("too many e-mails".into()),
            unsubscribed_at: at,
        }),
    };
    json!({
        "specversion": SPECVERSION,
        "id": format!("evt_example_{}", ty.as_str().replace('.', "_")),
        "source": "/shop/checkout",
        "type": ty.as_str(),
        "subject": subject,
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// An example's data as JSON, and its aggregate id (the subject).
fn sample<T: EventData>(data: T) -> (Value, String) {
    let subject = data.aggregate_id().to_owned();
    (serde_json::to_value(data).unwrap_or_default(), subject)
}

fn envelope(type_name: &str, data: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{BASE_ID}{type_name}.json"),
        "title": type_name,
        "description": format!("A `{type_name}` event: a CloudEvents 1.0 envelope in structured JSON mode. \
            `subject` (the aggregate id, the Kinesis partition key) must equal the data's aggregate id; \
            when absent ingest fills it in."),
        "type": "object",
        "required": ["specversion", "source", "type", "data"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": nullable(id_max(MAX_ID_LEN, "Unique per source; ingest assigns one when absent (a UUIDv7, or one derived from the request's Idempotency-Key; a signed webhook's id is its webhook-id).")),
            "source": id_max(MAX_SOURCE_LEN, "URI reference of the producer, e.g. /shop/checkout.").to_value(),
            "type": {"const": type_name},
            "subject": nullable(id_max(MAX_ID_LEN, "The aggregate id; must equal the data's (not checked by this schema); filled in from the data when absent.")),
            "time": {
                "type": ["string", "null"], "format": "date-time", "pattern": TIMESTAMP_PATTERN,
                "description": "When it happened (RFC 3339); the receive time when absent."
            },
            "datacontenttype": {
                "type": ["string", "null"],
                "pattern": JSON_MEDIA_TYPE_PATTERN,
                "description": "A JSON media type (application/json)."
            },
            "dataschema": nullable(id_max(2048, "URI of the data's schema.")),
            "traceparent": {
                "type": "string", "pattern": TRACEPARENT_PATTERN,
                "description": "The CloudEvents distributed-tracing extension: a W3C trace context, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (lower-case hex; the trace and parent ids may not be all zeros, not checked by this schema). Ingest adds the request's when absent."
            },
            "data": data
        },
        "propertyNames": {
            "pattern": "^[a-z0-9]{1,20}$",
            "description": "Attribute names; an extension's is 1 to 20 lower-case letters or digits (at most 32 extensions, not checked by this schema)."
        },
        "additionalProperties": {
            "type": ["string", "number", "boolean"], "maxLength": 1024,
            "description": "An extension's value: a string of at most 1024 bytes in UTF-8 (this schema counts characters), a number or a boolean."
        }
    })
}

/// Every schema file of `schemas/`: one per event type, and `event.json`, any one of them (for batch items).
pub fn all() -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> = EventType::ALL
        .iter()
        .map(|ty| (format!("{}.json", ty.as_str()), event_schema(*ty)))
        .collect();
    let any = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{BASE_ID}event.json"),
        "title": "event",
        "description": "Any event of the catalogue; a batch is a JSON array of these.",
        "oneOf": EventType::ALL
            .iter()
            .map(|ty| json!({"$ref": format!("{}.json", ty.as_str())}))
            .collect::<Vec<_>>()
    });
    files.push(("event.json".into(), any));
    files
}

/// The text of a schema file: pretty JSON (sorted keys) and a final newline, so diffs are readable.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
