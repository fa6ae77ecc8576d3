//! `look`: the local state, read where and as the functions write it.
//!
//! - `ledger ACCOUNT`: the payments consumer's ledger table (`LEDGER_TABLE`, moto; the second moto when dev.sh put
//!   the payments tables there, `TUBES_MOTO_DYNAMODB_PORT`): the account item, read by the
//!   consumer's own reader, its counted credits (`credit#{account}#{id}`) and its payments' decisions
//!   (`payment#{id}`, by `account_id`);
//! - `profile USER`: the users directory (`USERS_TABLE`): the profile, read by the directory's own reader, and the
//!   user's memberships (`member#{list}#{user}`, a tombstone once they left);
//! - `outbox`: the e-mails the consumers sent, the local mailer's `outbox.jsonl` in the state directory.

use aws_sdk_dynamodb::types::AttributeValue;
use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::ledger::Account;
use tubes_platform::aws::{item_number, item_text, Item};
use tubes_platform::mail::{Email, OutboxMailer};
use tubes_platform::users::{DynamoDirectory, Profile};

use super::stack::Stack;
use super::DevError;

/// `look ledger ACCOUNT | profile USER | outbox [--limit N]`.
#[derive(Debug, clap::Args)]
pub struct LookArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// An account's balance, credits and payments (the payments consumer's ledger).
    Ledger {
        /// The account id (acc_42).
        account: String,
    },
    /// A user's profile and mailing lists (the users directory).
    Profile {
        /// The user id (usr_7).
        user: String,
    },
    /// The e-mails sent, newest last (the local mailer's outbox).
    Outbox {
        /// Only the last N.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only those to this address.
        #[arg(long)]
        to: Option<String>,
    },
}

/// An account's ledger: the account item, its credits and its payments' decisions.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) account: Account,
    /// `(credit id, amount)`.
    pub(super) credits: Vec<(String, i64)>,
    /// `(payment id, amount, outcome, reason)`.
    pub(super) payments: Vec<(String, i64, String, Option<String>)>,
}

/// A user's profile and memberships.
#[derive(Debug)]
pub(super) struct User {
    pub(super) profile: Profile,
    /// `(list, member now)`.
    pub(super) lists: Vec<(String, bool)>,
}

fn store_error(stack: &Stack, table: &str, e: impl std::fmt::Display) -> DevError {
    stack.unreachable(&format!("DynamoDB (table {table})"), "TUBES_MOTO_PORT", e)
}

/// Every item of `table` whose `pk` starts with `prefix` (a scan: the local tables are small).
async fn items(
    stack: &Stack,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: &str,
) -> Result<Vec<Item>, DevError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(stack, table, tubes_platform::aws::describe("Scan", e)))?;
        out.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// The ledger of `account_id`; `None` when the account does not exist.
pub(super) async fn ledger(stack: &Stack, account_id: &str) -> Result<Option<Ledger>, DevError> {
    let table = stack.resource("LEDGER_TABLE", "LedgerTable");
    let client = stack.dynamodb_of("tubes-consumer-payments");
    let ledger = DynamoLedger::new(client.clone(), &table);
    let Some(account) = ledger
        .account(account_id)
        .await
        .map_err(|e| store_error(stack, &table, e))?
    else {
        return Ok(None);
    };
    let credit_prefix = format!("credit#{account_id}#");
    let credits = items(stack, &client, &table, &credit_prefix)
        .await?
        .iter()
        .filter_map(|i| {
            let id = item_text(i, "pk")?.strip_prefix(&credit_prefix)?;
            Some((id.to_owned(), item_number(i, "amount")?))
        })
        .collect();
    let payments = items(stack, &client, &table, "payment#")
        .await?
        .iter()
        .filter(|i| item_text(i, "account_id") == Some(account_id))
        .filter_map(|i| {
            Some((
                item_text(i, "pk")?.strip_prefix("payment#")?.to_owned(),
                item_number(i, "amount")?,
                item_text(i, "outcome")?.to_owned(),
                item_text(i, "reason").map(str::to_owned),
            ))
        })
        .collect();
    Ok(Some(Ledger {
        account,
        credits,
        payments,
    }))
}

/// The profile and lists of `user_id`; `None` when there is no profile.
pub(super) async fn user(stack: &Stack, user_id: &str) -> Result<Option<User>, DevError> {
    let table = stack.resource("USERS_TABLE", "UsersTable");
    let client = stack.dynamodb_of("tubes-consumer-signups");
    let directory = DynamoDirectory::new(client.clone(), &table);
    let Some(profile) = directory
        .profile(user_id)
        .await
        .map_err(|e| store_error(stack, &table, e))?
    else {
        return Ok(None);
    };
    let suffix = format!("#{user_id}");
    let lists = items(stack, &client, &table, "member#")
        .await?
        .iter()
        .filter_map(|i| {
            let list = item_text(i, "pk")?
                .strip_prefix("member#")?
                .strip_suffix(&suffix)?;
            let member = i
                .get("member")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(true);
            Some((list.to_owned(), member))
        })
        .collect();
    Ok(Some(User { profile, lists }))
}

/// Every e-mail in the outbox, oldest first (none when there is no outbox yet).
pub(super) fn outbox(stack: &Stack) -> Vec<Email> {
    OutboxMailer::new(stack.outbox()).read()
}

pub(super) async fn run(stack: &Stack, args: LookArgs) -> Result<(), DevError> {
    match args.what {
        What::Ledger { account } => {
            let ledger = ledger(stack, &account).await?.ok_or_else(|| {
                DevError::NotFound(format!(
                    "no account {account} in the ledger ({}): send account.opened first",
                    stack.resource("LEDGER_TABLE", "LedgerTable")
                ))
            })?;
            print!("{}", ledger_text(&account, &ledger));
        }
        What::Profile { user: user_id } => {
            let user = user(stack, &user_id).await?.ok_or_else(|| {
                DevError::NotFound(format!(
                    "no profile of {user_id} in the users directory ({}): send user.signed_up first",
                    stack.resource("USERS_TABLE", "UsersTable")
                ))
            })?;
            print!("{}", user_text(&user_id, &user));
        }
        What::Outbox { limit, to } => {
            let path = stack.outbox();
            if !path.exists() {
                return Err(DevError::Stack(format!(
                    "no outbox at {}: nothing was sent yet, or the stack keeps its state elsewhere (TUBES_STATE_DIR)",
                    path.display()
                )));
            }
            let mails: Vec<Email> = outbox(stack)
                .into_iter()
                .filter(|m| to.as_ref().is_none_or(|t| &m.to == t))
                .collect();
            for mail in &mails[mails.len().saturating_sub(limit)..] {
                println!(
                    "to {}  «{}»  ({})",
                    mail.to, mail.subject, mail.idempotency_key
                );
                for line in mail.text.lines() {
                    println!("    {line}");
                }
            }
            println!("{} e-mail(s) in {}", mails.len(), path.display());
        }
    }
    Ok(())
}

/// An account's ledger, for people.
pub(super) fn ledger_text(account_id: &str, ledger: &Ledger) -> String {
    let a = &ledger.account;
    let mut out = format!(
        "account {account_id}: balance {} {}{}{}\n",
        a.balance,
        a.currency,
        if a.frozen { ", frozen" } else { "" },
        a.per_payment_limit
            .map(|l| format!(", limit {l} per payment"))
            .unwrap_or_default()
    );
    for (id, amount) in &ledger.credits {
        out.push_str(&format!("  credit  {id}: +{amount}\n"));
    }
    for (id, amount, outcome, reason) in &ledger.payments {
        let reason = reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.push_str(&format!("  payment {id}: {amount} {outcome}{reason}\n"));
    }
    out
}

/// A user's profile and lists, for people.
pub(super) fn user_text(user_id: &str, user: &User) -> String {
    let p = &user.profile;
    let mut out = format!(
        "user {user_id}: {} <{}>, signed up {}\n",
        p.name, p.email, p.signed_up_at
    );
    for (list, member) in &user.lists {
        let state = if *member { "member" } else { "left" };
        out.push_str(&format!("  list {list}: {state}\n"));
    }
    if user.lists.is_empty() {
        out.push_str("  on no list\n");
    }
    out
}
