//! The accounts read model: per account, its state, currency and balance as the ledger's rules make them (seed
//! 002), and its last payments with their outcome.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_contract::{Envelope, Event};
use tubes_platform::read_model::Fold;

/// How many payments an account's document lists, newest first.
pub const LAST_PAYMENTS: usize = 20;

/// Where an account stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Events about it arrived, but not its opening: the ledger refuses its credits and payments.
    #[default]
    Unknown,
    /// Open.
    Open,
    /// Frozen: payments are refused.
    Frozen,
}

/// A payment's outcome, as far as the stream has told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Asked for, not decided yet.
    Received,
    /// Debited.
    Processed,
    /// Refused; nothing debited.
    Failed,
}

/// One payment of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Its id.
    pub payment_id: String,
    /// Amount in minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Its outcome so far.
    pub status: PaymentStatus,
    /// Why it was refused (`insufficient_funds`), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was decided (RFC 3339), once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// An account's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub account_id: String,
    /// Where it stands.
    pub status: AccountStatus,
    /// Its currency, once opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Balance in minor units: credits counted minus payments processed.
    pub balance: i64,
    /// When it was opened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    /// When it was frozen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<String>,
    /// The last [`LAST_PAYMENTS`] payments, newest first.
    pub payments: Vec<Payment>,
    /// The time of the last event applied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&Rfc3339).ok()
}

impl Account {
    fn payment(&mut self, payment_id: &str) -> Option<&mut Payment> {
        self.payments
            .iter_mut()
            .find(|p| p.payment_id == payment_id)
    }

    fn record(&mut self, payment: Payment) {
        self.payments.insert(0, payment);
        self.payments.truncate(LAST_PAYMENTS);
    }

    /// A decision on a payment: the listed payment takes the outcome (or it is listed now, when its
    /// `payment.received` came before the document's window). `true` if the outcome is new.
    fn decide(&mut self, payment: Payment) -> bool {
        match self.payment(&payment.payment_id) {
            Some(listed) if listed.status != PaymentStatus::Received => false,
            Some(listed) => {
                *listed = payment;
                true
            }
            None => {
                self.record(payment);
                true
            }
        }
    }
}

impl Fold for Account {
    const MODEL: &'static str = "accounts";

    fn aggregate(envelope: &Envelope) -> Option<&str> {
        match envelope.event() {
            Event::AccountOpened(_)
            | Event::AccountCredited(_)
            | Event::AccountFrozen(_)
            | Event::PaymentReceived(_)
            | Event::PaymentProcessed(_)
            | Event::PaymentFailed(_) => Some(envelope.event().aggregate_id()),
            Event::UserSignedUp(_) | Event::UserUnsubscribed(_) => None,
        }
    }

    /// Facts with ids of their own count once per id, as the ledger counts them: a credit per credit id, a
    /// payment's outcome per payment id, whatever events carry them.
    fn effect_key(envelope: &Envelope) -> String {
        match envelope.event() {
            Event::AccountCredited(c) => format!("credit#{}", c.credit_id),
            Event::PaymentProcessed(p) => format!("processed#{}", p.payment_id),
            Event::PaymentFailed(p) => format!("failed#{}", p.payment_id),
            Event::PaymentReceived(p) => format!("received#{}", p.payment_id),
            _ => format!("{}#{}", envelope.source(), envelope.id()),
        }
    }

    fn apply(&mut self, envelope: &Envelope) {
        let event = envelope.event();
        event.aggregate_id().clone_into(&mut self.account_id);
        self.updated_at = rfc3339(envelope.time());
        match event {
            // As the ledger: an account already open is left as it is.
            Event::AccountOpened(o) if self.status == AccountStatus::Unknown => {
                self.status = AccountStatus::Open;
                self.currency = Some(o.currency.clone());
                self.opened_at = rfc3339(o.opened_at);
            }
            // As the ledger: a credit counts on an opened account, in its currency (else it is parked there).
            Event::AccountCredited(c)
                if self.status != AccountStatus::Unknown
                    && self.currency.as_deref() == Some(c.currency.as_str()) =>
            {
                self.balance += c.amount;
            }
            Event::AccountFrozen(f) if self.status == AccountStatus::Open => {
                self.status = AccountStatus::Frozen;
                self.frozen_at = rfc3339(f.frozen_at);
            }
            Event::PaymentReceived(p) if self.payment(&p.payment_id).is_none() => {
                self.record(Payment {
                    payment_id: p.payment_id.clone(),
                    amount: p.amount,
                    currency: p.currency.clone(),
                    status: PaymentStatus::Received,
                    reason: None,
                    decided_at: None,
                });
            }
            Event::PaymentProcessed(p) => {
                let new = self.decide(Payment {
                    payment_id: p.payment_id.clone(),
                    amount: p.amount,
                    currency: p.currency.clone(),
                    status: PaymentStatus::Processed,
                    reason: None,
                    decided_at: rfc3339(p.processed_at),
                });
                if new {
                    self.balance -= p.amount;
                }
            }
            Event::PaymentFailed(p) => {
                self.decide(Payment {
                    payment_id: p.payment_id.clone(),
                    amount: p.amount,
                    currency: p.currency.clone(),
                    status: PaymentStatus::Failed,
                    reason: Some(p.reason.as_str().to_owned()),
                    decided_at: rfc3339(p.failed_at),
                });
            }
            _ => {}
        }
    }
}
