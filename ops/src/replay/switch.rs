//! Switching a read model's live version to a rebuilt one, without downtime for readers and without a gap:
//!
//! 1. **Pause** the writers of every model (the pointer says `paused`): the projections function's records are
//!    retried, not applied, within [`POINTER_TTL`]; readers go on reading the old version.
//! 2. **Catch up**: replay what the event store holds since the rebuild into the new version, again and again,
//!    until every document of the old version (frozen now) is covered by the new one: for every aggregate, the
//!    new document has applied at least the old one's last record. (The event store is a batching window behind
//!    the stream, so this takes seconds.)
//! 3. **Switch**: point the models at the new version, unpaused. The projections function's retried records
//!    apply to the new version; those the catch-up applied already are skipped by their sequence numbers.
//!
//! If the new version does not cover the old one within the deadline, the pointers go back as they were.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tubes_platform::read_model::{Pointer, ReadModelStore, DEFAULT_VERSION, POINTER_TTL};

/// What a switch found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchReport {
    /// Per model: (old version, documents, of which the new version's differ).
    pub models: Vec<(String, String, usize, usize)>,
    /// Catch-up rounds until the new version covered the old.
    pub rounds: usize,
}

/// Aggregates of `old` whose last applied record `new` has not applied (missing, or an older sequence).
async fn uncovered<S: ReadModelStore>(
    store: &S,
    model: &str,
    old: &str,
    new: &str,
) -> Result<(usize, usize, usize), String> {
    let old_docs = store
        .documents(model, old)
        .await
        .map_err(|e| e.to_string())?;
    let new_docs = store
        .documents(model, new)
        .await
        .map_err(|e| e.to_string())?;
    let mut missing = 0;
    let mut differ = 0;
    for (aggregate, doc) in &old_docs {
        match new_docs.get(aggregate) {
            Some(n) if n.seq >= doc.seq => differ += usize::from(n.doc != doc.doc),
            _ => missing += 1,
        }
    }
    Ok((missing, old_docs.len(), differ))
}

/// Puts the pointers back as they were before the switch (best effort: the error being reported is the first).
async fn restore<S: ReadModelStore>(store: &S, before: &[(&str, Pointer)]) {
    for (model, pointer) in before {
        let _ = store.set_pointer(model, pointer).await;
    }
}

/// Switches `models` to `version` (see the module docs), running `catch_up` until the new version covers the
/// old, for at most `deadline`.
pub async fn switch<S, F, Fut>(
    store: &S,
    models: &[&str],
    version: &str,
    mut catch_up: F,
    deadline: Duration,
) -> Result<SwitchReport, String>
where
    S: ReadModelStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut before = Vec::new();
    for model in models {
        let pointer = store
            .pointer(model)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| Pointer {
                live: DEFAULT_VERSION.to_owned(),
                paused: false,
            });
        if pointer.live == version {
            return Err(format!("{model}: {version} is live already"));
        }
        if pointer.paused {
            return Err(format!(
                "{model}: paused by another switch (if none is running, set its pointer's paused back to false)"
            ));
        }
        before.push((*model, pointer));
    }
    for (model, pointer) in &before {
        let paused = Pointer {
            live: pointer.live.clone(),
            paused: true,
        };
        if let Err(e) = store.set_pointer(model, &paused).await {
            restore(store, &before).await;
            return Err(e.to_string());
        }
    }
    // Every writer has seen the pause once its cached pointer expired.
    tokio::time::sleep(POINTER_TTL + Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut report = SwitchReport::default();
    loop {
        report.rounds += 1;
        if let Err(e) = catch_up().await {
            restore(store, &before).await;
            return Err(format!("catching up: {e}; nothing switched"));
        }
        let mut covered = true;
        report.models.clear();
        for (model, pointer) in &before {
            let (missing, documents, differ) =
                match uncovered(store, model, &pointer.live, version).await {
                    Ok(counts) => counts,
                    Err(e) => {
                        restore(store, &before).await;
                        return Err(e);
                    }
                };
            covered &= missing == 0;
            report
                .models
                .push(((*model).to_owned(), pointer.live.clone(), documents, differ));
        }
        if covered {
            break;
        }
        if started.elapsed() > deadline {
            restore(store, &before).await;
            return Err(format!(
                "{version} did not cover the live version within {} s (is the archive behind?); nothing switched",
                deadline.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (model, _) in &before {
        let live = Pointer {
            live: version.to_owned(),
            paused: false,
        };
        store.set_pointer(model, &live).await.map_err(|e| {
            format!("{model}: {e} (the pointer may still be paused: set it to {version})")
        })?;
    }
    Ok(report)
}
