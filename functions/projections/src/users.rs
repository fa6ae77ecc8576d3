//! The users read model: per user, the profile from their signup and the mailing lists they are on (seeds 003,
//! 004), by the directory's rule: a membership follows the latest change by the events' own times.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_contract::{Envelope, Event};
use tubes_platform::read_model::Fold;

/// The list a user who opts in to marketing joins (the signups consumer's).
pub const NEWS_LIST: &str = "news";

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Their address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their language, if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// When they signed up (RFC 3339).
    pub signed_up_at: String,
}

/// A membership change in force: on the list or off it, as of a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// On the list.
    pub member: bool,
    /// As of (RFC 3339).
    pub at: String,
}

/// A user's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Their id.
    pub user_id: String,
    /// Their profile, once they signed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The lists they are on.
    pub lists: Vec<String>,
    /// Every list they joined or left, with the change in force.
    pub memberships: BTreeMap<String, Membership>,
    /// The time of the last event applied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl User {
    /// On or off `list` as of `at`, unless a change as late or later is in force.
    fn change(&mut self, list: &str, member: bool, at: OffsetDateTime) {
        let later_in_force = self.memberships.get(list).is_some_and(|m| {
            OffsetDateTime::parse(&m.at, &Rfc3339).is_ok_and(|current| current >= at)
        });
        if later_in_force {
            return;
        }
        self.memberships.insert(
            list.to_owned(),
            Membership {
                member,
                at: rfc3339(at),
            },
        );
        self.lists = self
            .memberships
            .iter()
            .filter(|(_, m)| m.member)
            .map(|(l, _)| l.clone())
            .collect();
    }
}

impl Fold for User {
    const MODEL: &'static str = "users";

    fn aggregate(envelope: &Envelope) -> Option<&str> {
        match envelope.event() {
            Event::UserSignedUp(_) | Event::UserUnsubscribed(_) => {
                Some(envelope.event().aggregate_id())
            }
            _ => None,
        }
    }

    fn apply(&mut self, envelope: &Envelope) {
        envelope
            .event()
            .aggregate_id()
            .clone_into(&mut self.user_id);
        self.updated_at = Some(rfc3339(envelope.time()));
        match envelope.event() {
            Event::UserSignedUp(s) => {
                // As the directory: the profile is created once.
                if self.profile.is_none() {
                    self.profile = Some(Profile {
                        email: s.email.clone(),
                        name: s.name.clone(),
                        locale: s.locale.clone(),
                        signed_up_at: rfc3339(s.signed_up_at),
                    });
                }
                if s.marketing_opt_in {
                    self.change(NEWS_LIST, true, s.signed_up_at);
                }
            }
            Event::UserUnsubscribed(u) => self.change(&u.list_id, false, u.unsubscribed_at),
            _ => {}
        }
    }
}
