//! The ledger in DynamoDB: one table, partition key `pk`.
//!
//! - `account#{id}`: `currency`, `balance` (N), `frozen` (BOOL), `per_payment_limit` (N, optional);
//! - `credit#{account}#{credit id}`: a credit that was counted;
//! - `payment#{payment id}`: the decision: `account_id`, `amount`, `outcome` (`processed` | `failed`), `reason`,
//!   `at` (RFC 3339).
//!
//! A debit is one `TransactWriteItems`: the account's balance goes down only if every rule holds (conditions on
//! the account item), and the payment's decision is written only if there is none yet. Either both happen or
//! neither, so a payment is debited at most once whatever runs twice; a refusal is written the same way, so a
//! payment refused once stays refused even after a credit. The cancellation reasons (with the items'
//! old values) say which condition failed and why.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_contract::catalogue::{
    AccountCredited, AccountFrozen, AccountOpened, PaymentFailureReason, PaymentReceived,
};

use crate::ledger::{refusal, Account, Decision, Ledger};
use crate::PaymentsError;

use tubes_platform::aws::{item_number as get_n, item_text as get_s, Item};

/// The ledger in the DynamoDB table `table`.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn account_key(id: &str) -> AttributeValue {
    s(&format!("account#{id}"))
}

fn store<E: std::error::Error + 'static>(operation: &str, err: SdkError<E>) -> PaymentsError {
    PaymentsError::Store(tubes_platform::aws::describe(operation, err))
}

fn built(e: aws_sdk_dynamodb::error::BuildError) -> PaymentsError {
    PaymentsError::Store(e.to_string())
}

fn account_of(item: &Item) -> Option<Account> {
    Some(Account {
        currency: get_s(item, "currency")?.to_owned(),
        balance: get_n(item, "balance")?,
        frozen: item
            .get("frozen")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        per_payment_limit: get_n(item, "per_payment_limit"),
    })
}

/// The decision a payment item records, checked against the payment asking.
fn decision_of(item: &Item, payment: &PaymentReceived) -> Result<Decision, PaymentsError> {
    let reused = || PaymentsError::PaymentIdReused(payment.payment_id.clone());
    if get_s(item, "account_id") != Some(payment.account_id.as_str())
        || get_n(item, "amount") != Some(payment.amount)
    {
        return Err(reused());
    }
    let corrupt = || {
        PaymentsError::Store(format!(
            "payment {} has no readable decision",
            payment.payment_id
        ))
    };
    let at = get_s(item, "at")
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or_else(corrupt)?;
    match get_s(item, "outcome") {
        Some("processed") => Ok(Decision::Processed { at }),
        Some("failed") => {
            let reason = get_s(item, "reason")
                .and_then(PaymentFailureReason::parse)
                .ok_or_else(corrupt)?;
            Ok(Decision::Refused { reason, at })
        }
        _ => Err(corrupt()),
    }
}

/// Whether cancellation reason `i` is a failed condition; with the item's old values if it had any.
fn failed_condition(reasons: &[CancellationReason], i: usize) -> Option<Option<&Item>> {
    let r = reasons.get(i)?;
    (r.code() == Some("ConditionalCheckFailed")).then(|| r.item())
}

/// The cancellation reasons of a cancelled transaction; other errors are the store's.
fn cancelled(
    operation: &str,
    err: SdkError<TransactWriteItemsError>,
) -> Result<Vec<CancellationReason>, PaymentsError> {
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(e) => {
            Ok(e.cancellation_reasons().to_vec())
        }
        other => Err(PaymentsError::Store(tubes_platform::aws::describe(
            operation, other,
        ))),
    }
}

impl DynamoLedger {
    /// The ledger in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// An account as stored, read consistently.
    pub async fn account(&self, account_id: &str) -> Result<Option<Account>, PaymentsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", account_key(account_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store("GetItem", e))?;
        Ok(out.item().and_then(account_of))
    }

    async fn payment_item(&self, payment_id: &str) -> Result<Option<Item>, PaymentsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&format!("payment#{payment_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store("GetItem", e))?;
        Ok(out.item)
    }

    /// The payment's decision item, if `condition` on it failed because one exists: read from the cancellation
    /// reason, or from the table if the reason carries no item.
    async fn recorded(
        &self,
        old: Option<&Item>,
        payment: &PaymentReceived,
    ) -> Result<Decision, PaymentsError> {
        match old {
            Some(item) if !item.is_empty() => decision_of(item, payment),
            _ => match self.payment_item(&payment.payment_id).await? {
                Some(item) => decision_of(&item, payment),
                None => Err(PaymentsError::Store(format!(
                    "payment {} was decided and is gone",
                    payment.payment_id
                ))),
            },
        }
    }

    fn decision_put(
        &self,
        payment: &PaymentReceived,
        decision: Decision,
    ) -> Result<Put, PaymentsError> {
        let (outcome, reason, at) = match decision {
            Decision::Processed { at } => ("processed", None, at),
            Decision::Refused { reason, at } => ("failed", Some(reason), at),
        };
        let at = at
            .format(&Rfc3339)
            .map_err(|e| PaymentsError::Store(e.to_string()))?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&format!("payment#{}", payment.payment_id)))
            .item("account_id", s(&payment.account_id))
            .item("amount", n(payment.amount))
            .item("outcome", s(outcome))
            .item("at", s(&at))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(reason) = reason {
            put = put.item("reason", s(reason.as_str()));
        }
        put.build().map_err(built)
    }
}

impl Ledger for DynamoLedger {
    async fn open(&self, opened: &AccountOpened) -> Result<(), PaymentsError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", account_key(&opened.account_id))
            .item("currency", s(&opened.currency))
            .item("balance", n(0))
            .item("frozen", AttributeValue::Bool(false))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(limit) = opened.per_payment_limit {
            put = put.item("per_payment_limit", n(limit));
        }
        match put.send().await {
            Ok(_) => Ok(()),
            // Already open (a redelivery, or a second account.opened): nothing changes.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store("PutItem", e)),
        }
    }

    async fn credit(&self, credit: &AccountCredited) -> Result<(), PaymentsError> {
        let add = Update::builder()
            .table_name(&self.table)
            .key("pk", account_key(&credit.account_id))
            .update_expression("SET balance = balance + :amount")
            .condition_expression("attribute_exists(pk) AND currency = :currency")
            .expression_attribute_values(":amount", n(credit.amount))
            .expression_attribute_values(":currency", s(&credit.currency))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(built)?;
        let once = Put::builder()
            .table_name(&self.table)
            .item(
                "pk",
                s(&format!(
                    "credit#{}#{}",
                    credit.account_id, credit.credit_id
                )),
            )
            .item("amount", n(credit.amount))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(built)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(add).build())
            .transact_items(TransactWriteItem::builder().put(once).build())
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        let reasons = cancelled("TransactWriteItems", err)?;
        if failed_condition(&reasons, 1).is_some() {
            return Ok(()); // Counted already.
        }
        match failed_condition(&reasons, 0) {
            Some(Some(item)) if !item.is_empty() => {
                Err(PaymentsError::CurrencyMismatch(credit.account_id.clone()))
            }
            Some(_) => Err(PaymentsError::UnknownAccount(credit.account_id.clone())),
            None => Err(PaymentsError::Store(format!(
                "credit cancelled: {reasons:?}"
            ))),
        }
    }

    async fn freeze(&self, frozen: &AccountFrozen) -> Result<(), PaymentsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", account_key(&frozen.account_id))
            .update_expression("SET frozen = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(PaymentsError::UnknownAccount(frozen.account_id.clone()))
            }
            Err(e) => Err(store("UpdateItem", e)),
        }
    }

    async fn debit(
        &self,
        payment: &PaymentReceived,
        now: OffsetDateTime,
    ) -> Result<Decision, PaymentsError> {
        let take = Update::builder()
            .table_name(&self.table)
            .key("pk", account_key(&payment.account_id))
            .update_expression("SET balance = balance - :amount")
            .condition_expression(
                "attribute_exists(pk) AND frozen = :no AND currency = :currency AND balance >= :amount \
                 AND (attribute_not_exists(per_payment_limit) OR per_payment_limit >= :amount)",
            )
            .expression_attribute_values(":amount", n(payment.amount))
            .expression_attribute_values(":currency", s(&payment.currency))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(built)?;
        let processed = Decision::Processed { at: now };
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(take).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.decision_put(payment, processed)?)
                    .build(),
            )
            .send()
            .await;
        let Err(err) = result else {
            return Ok(processed);
        };
        let reasons = cancelled("TransactWriteItems", err)?;
        // Decided before: that decision stands.
        if let Some(old) = failed_condition(&reasons, 1) {
            return self.recorded(old, payment).await;
        }
        let Some(old) = failed_condition(&reasons, 0) else {
            return Err(PaymentsError::Store(format!(
                "debit cancelled: {reasons:?}"
            )));
        };
        // A rule failed: which one, from the account as it was; then the refusal is recorded, once.
        let account = match old {
            Some(item) if !item.is_empty() => account_of(item),
            _ => None,
        };
        let reason =
            refusal(account.as_ref(), payment).unwrap_or(PaymentFailureReason::InsufficientFunds);
        let refused = Decision::Refused { reason, at: now };
        let put = self.decision_put(payment, refused)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(refused),
            // Another attempt decided it in between: its decision stands.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                self.recorded(None, payment).await
            }
            Err(e) => Err(store("PutItem", e)),
        }
    }
}
