//! What an authenticated source may send: its event types (never a consumer-owned one) and the CloudEvents
//! `source` values it may speak as. A batch with any event outside them is refused whole (`403`), every such
//! event named by its pointer, and nothing is written.

use tubes_contract::Envelope;

use crate::sources::Source;

/// Every code a refusal can carry.
pub const CODES: [&str; 3] = [
    "reserved_event_type",
    "event_type_not_allowed",
    "source_not_allowed",
];

/// One event a source may not send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `reserved_event_type`, `event_type_not_allowed` or `source_not_allowed`.
    pub code: &'static str,
    /// What a person reads.
    pub message: String,
    /// The JSON pointer of the member at fault (`/type`, `/3/source`).
    pub field: String,
}

/// The events of a request from `source` it may not send; `batch`: the body is an array (pointers start with
/// the event's index).
pub fn refusals(source: &Source, envelopes: &[Envelope], batch: bool) -> Vec<Refusal> {
    let mut out = Vec::new();
    for (i, e) in envelopes.iter().enumerate() {
        let at = |member: &str| {
            if batch {
                format!("/{i}/{member}")
            } else {
                format!("/{member}")
            }
        };
        let ty = e.event_type();
        if let Some(publisher) = ty.publisher() {
            out.push(Refusal {
                code: "reserved_event_type",
                message: format!(
                    "{} is published by the {publisher} consumer only; no source may send it",
                    ty.as_str()
                ),
                field: at("type"),
            });
        } else if !source.may_send(ty) {
            out.push(Refusal {
                code: "event_type_not_allowed",
                message: format!("source {} may not send {} events", source.name, ty.as_str()),
                field: at("type"),
            });
        }
        if !source.may_speak_as(e.source()) {
            out.push(Refusal {
                code: "source_not_allowed",
                message: format!(
                    "source {} may not send events whose source is {}",
                    source.name,
                    e.source()
                ),
                field: at("source"),
            });
        }
    }
    out
}
