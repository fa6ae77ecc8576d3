//! `story`: the README's story on the local stack, so that every consumer has something to show. An account is
//! opened, credited 50.00 and pays 12.50 (payments: the ledger; notifications: the payer's e-mail); a person
//! signs up for the news (signups: the profile, the list, the welcome e-mail) and, once that is visible,
//! unsubscribes (unsubscribes: off the list, a confirmation e-mail: sent earlier, the unsubscribe could be
//! handled before the signup, which its later time would then supersede, with nobody to confirm to). Then it
//! polls until each effect is visible, printing each as it appears, and fails naming those that did not appear
//! in time.

use std::time::{Duration, Instant};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use tubes_contract::EventType;

use super::look;
use super::sample::{self, Identity, Set};
use super::send;
use super::stack::Stack;
use super::DevError;

/// `story [--name NAME] [--timeout SECS]`.
#[derive(Debug, clap::Args)]
pub struct StoryArgs {
    /// Names the story's aggregates: acc_NAME, usr_NAME, … (default: a fresh one, so the story can be played
    /// again on the same stack).
    #[arg(long, value_parser = name)]
    name: Option<String>,
    /// How long to wait for the effects, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err("letters, digits, _ and - (at most 40)".into())
    }
}

/// The story's ids.
#[derive(Debug)]
struct Cast {
    account: String,
    payment: String,
    payer: String,
    user: String,
    email: String,
}

impl Cast {
    fn new(name: &str) -> Self {
        Self {
            account: format!("acc_{name}"),
            payment: format!("pay_{name}"),
            payer: format!("payer+{name}@example.com"),
            user: format!("usr_{name}"),
            email: format!("reader+{name}@example.com"),
        }
    }
}

const CREDIT: i64 = 5000;
const PAYMENT: i64 = 1250;
const LIST: &str = "news";

/// The effects the story waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// payments: the credit counted and the payment debited once.
    Ledger,
    /// notifications: the payer told of the outcome.
    PayerMail,
    /// signups: the profile, on the news list.
    Profile,
    /// signups: the welcome e-mail.
    Welcome,
    /// unsubscribes: off the list.
    Unsubscribed,
    /// unsubscribes: the confirmation e-mail.
    Confirmation,
}

impl Effect {
    fn name(self) -> &'static str {
        match self {
            Effect::Ledger => "the ledger (payments)",
            Effect::PayerMail => "the payer's e-mail (notifications)",
            Effect::Profile => "the profile on the news list (signups)",
            Effect::Welcome => "the welcome e-mail (signups)",
            Effect::Unsubscribed => "off the news list (unsubscribes)",
            Effect::Confirmation => "the unsubscribe confirmation e-mail (unsubscribes)",
        }
    }

    /// Whether it is visible, and what there is now.
    async fn state(self, stack: &Stack, cast: &Cast) -> Result<(bool, String), DevError> {
        // The consumers' e-mail keys start with their names (`signups:welcome:…`).
        let mail = |consumer: &str, to: &str| {
            let mails = look::outbox(stack);
            let found = mails
                .iter()
                .find(|m| m.to == to && m.idempotency_key.starts_with(&format!("{consumer}:")));
            match found {
                Some(m) => (true, format!("to {to}: «{}»", m.subject)),
                None => (false, format!("no e-mail from {consumer} to {to}")),
            }
        };
        Ok(match self {
            Effect::Ledger => match look::ledger(stack, &cast.account).await? {
                None => (false, format!("no account {}", cast.account)),
                Some(l) => {
                    let decision = l.payments.iter().find(|p| p.0 == cast.payment);
                    let text = format!(
                        "account {}: balance {} {}, payment {}: {}",
                        cast.account,
                        l.account.balance,
                        l.account.currency,
                        cast.payment,
                        decision.map_or("not decided", |p| p.2.as_str())
                    );
                    let done = l.account.balance == CREDIT - PAYMENT
                        && decision.is_some_and(|p| p.2 == "processed");
                    (done, text)
                }
            },
            Effect::PayerMail => mail("notifications", &cast.payer),
            Effect::Welcome => mail("signups", &cast.email),
            Effect::Confirmation => mail("unsubscribes", &cast.email),
            Effect::Profile | Effect::Unsubscribed => match look::user(stack, &cast.user).await? {
                None => (false, format!("no profile of {}", cast.user)),
                Some(u) => {
                    let member = u.lists.iter().any(|(l, m)| l == LIST && *m);
                    let text = format!(
                        "user {}: {} <{}>, {}",
                        cast.user,
                        u.profile.name,
                        u.profile.email,
                        if member {
                            "on the news list"
                        } else {
                            "not on the news list"
                        }
                    );
                    let left = u.lists.iter().any(|(l, m)| l == LIST && !*m);
                    (
                        if self == Effect::Profile {
                            member
                        } else {
                            left
                        },
                        text,
                    )
                }
            },
        })
    }
}

/// Polls until every effect is visible (printing each as it appears) or the deadline passes.
async fn wait(
    stack: &Stack,
    cast: &Cast,
    effects: &[Effect],
    deadline: Instant,
) -> Result<(), DevError> {
    let mut waiting: Vec<Effect> = effects.to_vec();
    loop {
        let mut missing = Vec::new();
        for effect in waiting {
            let (seen, state) = effect.state(stack, cast).await?;
            if seen {
                println!("  ok  {}: {state}", effect.name());
            } else {
                missing.push((effect, state));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = missing
                .iter()
                .map(|(e, state)| format!("{} (now: {state})", e.name()))
                .collect();
            return Err(DevError::Refused(format!(
                "not visible in time: {}. What the functions did: make logs (or .local/dev/logs)",
                names.join("; ")
            )));
        }
        waiting = missing.into_iter().map(|(e, _)| e).collect();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends the story's events as the demo source, until a deadline.
struct Player<'a> {
    stack: &'a Stack,
    key: String,
    deadline: Instant,
}

impl Player<'_> {
    /// POSTs one step of the story: the type's example for `subject` with `sets`; a stack still starting (a
    /// 5xx, no answer) is asked again until the deadline.
    async fn step(&self, ty: EventType, subject: &str, sets: &[String]) -> Result<(), DevError> {
        let (stack, key, deadline) = (self.stack, self.key.as_str(), self.deadline);
        let sets: Vec<Set> = sets
            .iter()
            .map(|s| Set::parse(s).map_err(DevError::Usage))
            .collect::<Result<_, _>>()?;
        let event: Value = sample::event(ty, Identity::Ingest, Some(subject), &sets, 0)?;
        loop {
            let answer = send::post(stack, key, &event).await;
            match answer {
                Ok(a) if a.status < 400 => {
                    let id = a.body["accepted"][0]["id"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned();
                    println!(
                        "sent {:<18} {subject:<20} {} (id {id})",
                        ty.as_str(),
                        a.status
                    );
                    return Ok(());
                }
                Ok(a) if a.status < 500 => {
                    return Err(DevError::Refused(format!(
                        "ingest refused the story's {} ({}): {}",
                        ty.as_str(),
                        a.status,
                        a.body_text()
                    )))
                }
                Err(DevError::Stack(_)) | Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(a) => {
                    return Err(DevError::Refused(format!(
                        "ingest failed the story's {} ({}): {}",
                        ty.as_str(),
                        a.status,
                        a.body_text()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

pub(super) async fn run(stack: &Stack, args: StoryArgs) -> Result<(), DevError> {
    let key = stack.demo_api_key()?;
    let name = args.name.unwrap_or_else(|| {
        let id = uuid::Uuid::now_v7().simple().to_string();
        format!("story_{}", &id[id.len() - 8..])
    });
    let cast = Cast::new(&name);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let now = time::OffsetDateTime::now_utc();
    let at = |secs: i64| {
        (now + time::Duration::seconds(secs))
            .format(&Rfc3339)
            .unwrap_or_default()
    };
    let (account, user) = (cast.account.as_str(), cast.user.as_str());
    let player = Player {
        stack,
        key,
        deadline,
    };

    println!("the story of {account} and {user}:");
    player
        .step(
            EventType::AccountOpened,
            account,
            &[
                "currency=EUR".into(),
                "per_payment_limit=null".into(),
                format!("opened_at={}", at(0)),
            ],
        )
        .await?;
    player
        .step(
            EventType::AccountCredited,
            account,
            &[
                format!("credit_id=crd_{name}"),
                format!("amount={CREDIT}"),
                "currency=EUR".into(),
                format!("credited_at={}", at(0)),
            ],
        )
        .await?;
    player
        .step(
            EventType::PaymentReceived,
            account,
            &[
                format!("payment_id={}", cast.payment),
                format!("amount={PAYMENT}"),
                "currency=EUR".into(),
                format!("payer_email={}", cast.payer),
            ],
        )
        .await?;
    player
        .step(
            EventType::UserSignedUp,
            user,
            &[
                format!("email={}", cast.email),
                "marketing_opt_in=true".into(),
                format!("signed_up_at={}", at(0)),
            ],
        )
        .await?;
    wait(stack, &cast, &[Effect::Profile, Effect::Welcome], deadline).await?;
    player
        .step(
            EventType::UserUnsubscribed,
            user,
            &[
                format!("email={}", cast.email),
                format!("list_id={LIST}"),
                format!("unsubscribed_at={}", at(1)),
            ],
        )
        .await?;
    wait(
        stack,
        &cast,
        &[
            Effect::Ledger,
            Effect::PayerMail,
            Effect::Unsubscribed,
            Effect::Confirmation,
        ],
        deadline,
    )
    .await?;

    println!("\nwhat the story left:");
    if let Some(l) = look::ledger(stack, account).await? {
        print!("{}", look::ledger_text(account, &l));
    }
    if let Some(u) = look::user(stack, user).await? {
        print!("{}", look::user_text(user, &u));
    }
    for m in look::outbox(stack)
        .iter()
        .filter(|m| m.to == cast.payer || m.to == cast.email)
    {
        println!("e-mail to {}: «{}»", m.to, m.subject);
    }
    Ok(())
}
