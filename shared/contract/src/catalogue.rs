//! The event catalogue: every event type tubes carries, as Rust types.
//!
//! **Adding an event type** is one change in this file: define its data struct (with `Serialize`, `Deserialize`,
//! `JsonSchema`, an [`EventData`] and a [`Validate`] impl), add one line to the `catalogue!` invocation below, and
//! say who publishes it in [`EventType::publisher`] (a producer, or the consumer that owns it).
//! The enum variant, the `type` string, decoding, validation, serialisation, its JSON Schema and
//! [`EventType::ALL`] follow from that line (then `make schemas` writes `schemas/{type}.json`). The schema
//! attributes (`#[schemars(schema_with = ...)]`) name the same rules as the `Validate` impl, from
//! [`crate::schema`].
//!
//! **Strict at the edge, tolerant behind it.** [`Envelope::parse`](crate::Envelope::parse), which ingest runs on
//! what clients send, refuses a `data` member the type does not define (`unknown_member`, with the nearest
//! known member suggested): a misspelt optional member would otherwise be dropped without a word. Records on the
//! stream are read by [`Envelope::decode`](crate::Envelope::decode), which ignores members it does not know: a
//! newer ingest may write a member that an older consumer has not learnt yet (schema evolution). Both check
//! everything they do know, and report every problem of `data` at once: its structure first, against the
//! shape its JSON Schema describes (`shape`), then the typed decode and the [`Validate`] rules.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::validate::{Checker, Validate};
use crate::violation::{Code, Violation};

pub(crate) mod shape;

pub(crate) use shape::{Members, ScannedMembers, Unknown};

/// What every event's data provides beyond serde and validation.
pub trait EventData: Serialize + DeserializeOwned + Validate + JsonSchema {
    /// The name of the member that holds the aggregate id (`account_id`), for messages that point at it.
    const AGGREGATE: &'static str;

    /// The id of the aggregate the event belongs to (the value of [`EventData::AGGREGATE`]): the envelope's
    /// `subject` and the Kinesis partition key, so that the events of one aggregate stay in order.
    fn aggregate_id(&self) -> &str;
}

/// A catalogue type's [`shape::Shape`], read from its JSON Schema once.
trait Shaped {
    fn shape() -> &'static shape::Shape;
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $data:ty, )+) => {
        /// Every event in the catalogue, tagged by its CloudEvents `type`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $( $(#[$doc])* $variant($data), )+
        }

        /// The CloudEvents `type` of an event, without its data.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )+
        }

        impl EventType {
            /// Every type in the catalogue.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            /// The `type` string on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)+ }
            }

            /// The JSON Schema of this type's `data`, its nested definitions left in `generator`.
            pub(crate) fn data_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(EventType::$variant => <$data as JsonSchema>::json_schema(generator),)+ }
            }

            /// The type named `name`, if the catalogue has it.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(EventType::$variant),)+ _ => None }
            }

            /// The data member that holds the aggregate id ([`EventData::AGGREGATE`]).
            pub fn aggregate_member(self) -> &'static str {
                match self { $(EventType::$variant => <$data as EventData>::AGGREGATE,)+ }
            }
        }

        impl Event {
            /// This event's type.
            pub fn event_type(&self) -> EventType {
                match self { $(Event::$variant(_) => EventType::$variant,)+ }
            }

            /// See [`EventData::aggregate_id`].
            pub fn aggregate_id(&self) -> &str {
                match self { $(Event::$variant(d) => d.aggregate_id(),)+ }
            }

            /// Decodes the members of `data` as the data of `ty`, every problem recorded in `c`. `None` only
            /// with a problem recorded; `Some` may come with some too (a broken optional member is left out, so
            /// that the rules can still check the rest: see [`shape::decode`]).
            pub(crate) fn decode_data(
                ty: EventType,
                members: &Members<'_>,
                unknown: Unknown,
                c: &mut Checker,
            ) -> Option<Event> {
                match ty {
                    $(EventType::$variant => {
                        shape::decode::<$data>(<$data as Shaped>::shape(), members, unknown, c).map(Event::$variant)
                    })+
                }
            }

            /// The fast path's decode of `data` ([`shape::decode_fast`]): `None` for anything but a clean decode.
            pub(crate) fn decode_data_fast(
                ty: EventType,
                members: &ScannedMembers<'_>,
                unknown: Unknown,
            ) -> Option<Event> {
                match ty {
                    $(EventType::$variant => {
                        shape::decode_fast::<$data>(<$data as Shaped>::shape(), members, unknown).map(Event::$variant)
                    })+
                }
            }

            /// The fast path's decode of `data` straight from the envelope's scan ([`shape::decode_scan`]):
            /// `None` for anything but a clean decode.
            pub(crate) fn decode_data_scan<'a>(
                ty: EventType,
                s: &mut crate::json::Scanner<'a>,
                text: &'a str,
                unknown: Unknown,
            ) -> Option<Event> {
                match ty {
                    $(EventType::$variant => {
                        shape::decode_scan::<$data>(<$data as Shaped>::shape(), s, text, unknown).map(Event::$variant)
                    })+
                }
            }

            pub(crate) fn serialize_data<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self { $(Event::$variant(d) => map.serialize_entry("data", d),)+ }
            }
        }

        impl Validate for Event {
            fn validate(&self, checker: &mut Checker) {
                match self { $(Event::$variant(d) => d.validate(checker),)+ }
            }
        }

        $(impl From<$data> for Event {
            fn from(data: $data) -> Self { Event::$variant(data) }
        })+

        $(impl Shaped for $data {
            fn shape() -> &'static shape::Shape {
                // Read from the type's JSON Schema once, on first use.
                static SHAPE: std::sync::OnceLock<shape::Shape> = std::sync::OnceLock::new();
                SHAPE.get_or_init(|| shape::Shape::of(EventType::$variant))
            }
        })+
    };
}

catalogue! {
    /// A payment arrived and waits to be validated and processed.
    PaymentReceived = "payment.received" => PaymentReceived,
    /// A payment was debited from the payer's account.
    PaymentProcessed = "payment.processed" => PaymentProcessed,
    /// A payment was refused; `reason` says why.
    PaymentFailed = "payment.failed" => PaymentFailed,
    /// An account was opened, in one currency.
    AccountOpened = "account.opened" => AccountOpened,
    /// Money arrived on an account.
    AccountCredited = "account.credited" => AccountCredited,
    /// No payment may be taken from an account any more.
    AccountFrozen = "account.frozen" => AccountFrozen,
    /// A person created an account.
    UserSignedUp = "user.signed_up" => UserSignedUp,
    /// A person left a mailing list.
    UserUnsubscribed = "user.unsubscribed" => UserUnsubscribed,
}

impl EventType {
    /// The consumer that publishes this type, when a consumer owns it (its output): such a type is reserved, and
    /// no source may send it through ingest, whatever the configuration. `None`: producers send it. Exhaustive on
    /// purpose: a new type must say who publishes it.
    pub fn publisher(self) -> Option<&'static str> {
        match self {
            EventType::PaymentProcessed | EventType::PaymentFailed => Some("payments"),
            EventType::PaymentReceived
            | EventType::AccountOpened
            | EventType::AccountCredited
            | EventType::AccountFrozen
            | EventType::UserSignedUp
            | EventType::UserUnsubscribed => None,
        }
    }
}

pub(crate) const MAX_DESCRIPTION: usize = 500;
pub(crate) const MAX_NAME: usize = 200;
pub(crate) const MAX_LOCALE: usize = 35;

/// `payment.received`: a payer asks to move `amount` out of `account_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentReceived {
    /// The payment's id, unique per payment.
    #[schemars(schema_with = "crate::schema::id")]
    pub payment_id: String,
    /// The payer's account, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// Amount in integer minor units of `currency` (cents for EUR).
    #[schemars(schema_with = "crate::schema::amount")]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[schemars(schema_with = "crate::schema::currency")]
    pub currency: String,
    /// Where the payer is notified of the outcome.
    #[schemars(schema_with = "crate::schema::email")]
    pub payer_email: String,
    /// Free text shown to the payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_description_text")]
    pub description: Option<String>,
}

impl EventData for PaymentReceived {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for PaymentReceived {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/payment_id", &self.payment_id);
        c.id("/data/account_id", &self.account_id);
        c.amount("/data/amount", self.amount);
        c.currency("/data/currency", &self.currency);
        c.email("/data/payer_email", &self.payer_email);
        c.opt_text(
            "/data/description",
            self.description.as_deref(),
            MAX_DESCRIPTION,
        );
    }
}

/// `payment.processed`: the amount was debited exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentProcessed {
    /// The payment's id.
    #[schemars(schema_with = "crate::schema::id")]
    pub payment_id: String,
    /// The payer's account, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// Amount debited, in minor units.
    #[schemars(schema_with = "crate::schema::amount")]
    pub amount: i64,
    /// ISO 4217 code.
    #[schemars(schema_with = "crate::schema::currency")]
    pub currency: String,
    /// Where the payer is told of the outcome (from the payment).
    #[schemars(schema_with = "crate::schema::email")]
    pub payer_email: String,
    /// When the debit was committed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub processed_at: OffsetDateTime,
}

impl EventData for PaymentProcessed {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for PaymentProcessed {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/payment_id", &self.payment_id);
        c.id("/data/account_id", &self.account_id);
        c.amount("/data/amount", self.amount);
        c.currency("/data/currency", &self.currency);
        c.email("/data/payer_email", &self.payer_email);
    }
}

/// Why a payment was refused: machine-readable, stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFailureReason {
    /// No such account.
    AccountNotFound,
    /// The account is frozen.
    AccountFrozen,
    /// The balance is below the amount.
    InsufficientFunds,
    /// The payment's currency is not the account's.
    CurrencyMismatch,
    /// A per-payment or per-period limit would be exceeded.
    LimitExceeded,
}

impl PaymentFailureReason {
    /// Every reason.
    pub const ALL: [PaymentFailureReason; 5] = [
        PaymentFailureReason::AccountNotFound,
        PaymentFailureReason::AccountFrozen,
        PaymentFailureReason::InsufficientFunds,
        PaymentFailureReason::CurrencyMismatch,
        PaymentFailureReason::LimitExceeded,
    ];

    /// Its wire name, as in the event (`insufficient_funds`).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentFailureReason::AccountNotFound => "account_not_found",
            PaymentFailureReason::AccountFrozen => "account_frozen",
            PaymentFailureReason::InsufficientFunds => "insufficient_funds",
            PaymentFailureReason::CurrencyMismatch => "currency_mismatch",
            PaymentFailureReason::LimitExceeded => "limit_exceeded",
        }
    }

    /// The reason with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// `payment.failed`: a payment was refused and nothing was debited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentFailed {
    /// The payment's id.
    #[schemars(schema_with = "crate::schema::id")]
    pub payment_id: String,
    /// The payer's account, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// Amount that was asked for, in minor units.
    #[schemars(schema_with = "crate::schema::amount")]
    pub amount: i64,
    /// ISO 4217 code.
    #[schemars(schema_with = "crate::schema::currency")]
    pub currency: String,
    /// Where the payer is told of the outcome (from the payment).
    #[schemars(schema_with = "crate::schema::email")]
    pub payer_email: String,
    /// Why it failed.
    pub reason: PaymentFailureReason,
    /// Detail for people; the reason is what machines read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_description_text")]
    pub detail: Option<String>,
    /// When the payment was refused (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub failed_at: OffsetDateTime,
}

impl EventData for PaymentFailed {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for PaymentFailed {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/payment_id", &self.payment_id);
        c.id("/data/account_id", &self.account_id);
        c.amount("/data/amount", self.amount);
        c.currency("/data/currency", &self.currency);
        c.email("/data/payer_email", &self.payer_email);
        c.opt_text("/data/detail", self.detail.as_deref(), MAX_DESCRIPTION);
    }
}

/// `account.opened`: an account exists, holds `currency` only, and starts with a balance of zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountOpened {
    /// The account's id, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// The only currency of its balance and payments (ISO 4217).
    #[schemars(schema_with = "crate::schema::currency")]
    pub currency: String,
    /// The largest single payment it allows, in minor units; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_amount")]
    pub per_payment_limit: Option<i64>,
    /// When it was opened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub opened_at: OffsetDateTime,
}

impl EventData for AccountOpened {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for AccountOpened {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/account_id", &self.account_id);
        c.currency("/data/currency", &self.currency);
        if let Some(limit) = self.per_payment_limit {
            c.amount("/data/per_payment_limit", limit);
        }
    }
}

/// `account.credited`: `amount` arrived on the account; counted once per `credit_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountCredited {
    /// The credit's id, unique per credit.
    #[schemars(schema_with = "crate::schema::id")]
    pub credit_id: String,
    /// The account, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// Amount in minor units.
    #[schemars(schema_with = "crate::schema::amount")]
    pub amount: i64,
    /// ISO 4217 code; must be the account's.
    #[schemars(schema_with = "crate::schema::currency")]
    pub currency: String,
    /// When the money arrived (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub credited_at: OffsetDateTime,
}

impl EventData for AccountCredited {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for AccountCredited {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/credit_id", &self.credit_id);
        c.id("/data/account_id", &self.account_id);
        c.amount("/data/amount", self.amount);
        c.currency("/data/currency", &self.currency);
    }
}

/// `account.frozen`: payments from the account are refused from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountFrozen {
    /// The account, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub account_id: String,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_description_text")]
    pub reason: Option<String>,
    /// When it was frozen (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub frozen_at: OffsetDateTime,
}

impl EventData for AccountFrozen {
    const AGGREGATE: &'static str = "account_id";

    fn aggregate_id(&self) -> &str {
        &self.account_id
    }
}

impl Validate for AccountFrozen {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/account_id", &self.account_id);
        c.opt_text("/data/reason", self.reason.as_deref(), MAX_DESCRIPTION);
    }
}

/// `user.signed_up`: a person created an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserSignedUp {
    /// The user's id, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub user_id: String,
    /// Where the welcome e-mail goes.
    #[schemars(schema_with = "crate::schema::email")]
    pub email: String,
    /// Display name.
    #[schemars(schema_with = "crate::schema::name_text")]
    pub name: String,
    /// Preferred language, a BCP 47 tag such as `en` or `pt-BR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_locale")]
    pub locale: Option<String>,
    /// Whether the person asked for marketing e-mail.
    #[serde(default)]
    pub marketing_opt_in: bool,
    /// When the account was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub signed_up_at: OffsetDateTime,
}

impl EventData for UserSignedUp {
    const AGGREGATE: &'static str = "user_id";

    fn aggregate_id(&self) -> &str {
        &self.user_id
    }
}

impl Validate for UserSignedUp {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/user_id", &self.user_id);
        c.email("/data/email", &self.email);
        c.text("/data/name", &self.name, MAX_NAME);
        if let Some(locale) = &self.locale {
            if !is_language_tag(locale) {
                c.push(Violation::at(
                    Code::InvalidValue,
                    "/data/locale",
                    "must be a BCP 47 language tag like en or pt-BR",
                ));
            }
        }
    }
}

/// `user.unsubscribed`: a person left a mailing list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserUnsubscribed {
    /// The user's id, the aggregate.
    #[schemars(schema_with = "crate::schema::id")]
    pub user_id: String,
    /// The address that leaves the list.
    #[schemars(schema_with = "crate::schema::email")]
    pub email: String,
    /// The mailing list's id.
    #[schemars(schema_with = "crate::schema::id")]
    pub list_id: String,
    /// Why, if the person said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opt_description_text")]
    pub reason: Option<String>,
    /// When the person unsubscribed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::timestamp")]
    pub unsubscribed_at: OffsetDateTime,
}

impl EventData for UserUnsubscribed {
    const AGGREGATE: &'static str = "user_id";

    fn aggregate_id(&self) -> &str {
        &self.user_id
    }
}

impl Validate for UserUnsubscribed {
    fn validate(&self, c: &mut Checker) {
        c.id("/data/user_id", &self.user_id);
        c.email("/data/email", &self.email);
        c.id("/data/list_id", &self.list_id);
        c.opt_text("/data/reason", self.reason.as_deref(), MAX_DESCRIPTION);
    }
}

/// A simplified BCP 47 check: a 2–3 letter language, then subtags of 1–8 letters or digits.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    lang_ok
        && tag.len() <= MAX_LOCALE
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests;
