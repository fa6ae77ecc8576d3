use std::sync::Mutex;

use serde_json::json;
use tubes_platform::archive::Coordinates;

use super::*;

fn record(key: &str, seq: u64, ty: &str, hour: u8) -> ArchivedRecord {
    let data = if ty == "account.opened" {
        json!({"account_id": key, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"})
    } else {
        json!({"credit_id": format!("cr_{seq}"), "account_id": key, "amount": 10, "currency": "EUR",
               "credited_at": "2026-11-22T09:30:00Z"})
    };
    let bytes = serde_json::to_vec(
        &json!({"specversion": "1.0", "id": format!("e{seq}"), "source": "/bank",
        "type": ty, "subject": key, "time": "2026-11-22T10:00:00Z", "data": data}),
    )
    .unwrap();
    ArchivedRecord {
        at: Coordinates {
            partition_key: key.into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: format!("{seq}"),
            sub_sequence_number: None,
            arrival: time::macros::datetime!(2026-11-22 00:00 UTC)
                + time::Duration::hours(hour.into()),
        },
        content: Ok(Envelope::decode(&bytes).unwrap()),
    }
}

/// `record`, as a replay of the record at `original` put it on the stream again.
fn replayed(mut record: ArchivedRecord, original: u64) -> ArchivedRecord {
    let envelope = record.content.unwrap();
    let credited = Envelope::decode(&serde_json::to_vec(&envelope).unwrap()).unwrap();
    record.content = Ok(credited.replayed("rpl_0", &original.to_string()));
    record
}

/// A sink that records every wave it gets.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<(String, String)>>>);

impl Sink for Recorder {
    async fn send(&self, _: &str, wave: &[&Item]) -> Result<(), String> {
        self.0.lock().unwrap().push(
            wave.iter()
                .map(|i| (i.partition_key.clone(), i.sequence.as_str().to_owned()))
                .collect(),
        );
        Ok(())
    }
}

fn records() -> Vec<ArchivedRecord> {
    // Archived out of order (objects come back by name), two keys, a 10 that sorts after 9.
    vec![
        record("acc_b", 10, "account.credited", 11),
        record("acc_a", 2, "account.credited", 10),
        record("acc_a", 1, "account.opened", 10),
        record("acc_b", 9, "account.opened", 10),
        record("acc_a", 2, "account.credited", 10), // archived twice
        replayed(record("acc_b", 12, "account.credited", 12), 10), // an earlier replay of acc_b's 10
    ]
}

#[test]
fn a_plan_keeps_each_keys_original_order_and_each_record_once() {
    let plan = Plan::new(records(), &Selection::default());
    assert_eq!(plan.len(), 4);
    let lanes: Vec<(&str, Vec<&str>)> = plan
        .lanes
        .iter()
        .map(|(k, l)| (k.as_str(), l.iter().map(|i| i.sequence.as_str()).collect()))
        .collect();
    assert_eq!(
        lanes,
        [("acc_a", vec!["1", "2"]), ("acc_b", vec!["9", "10"])]
    );
    assert_eq!(plan.by_type()["account.credited"], 2);
}

#[test]
fn a_selection_filters_by_type_subject_and_arrival_and_skips_objects_outside_it() {
    let selection = Selection {
        types: vec!["account.credited".into()],
        from: Some(time::macros::datetime!(2026-11-22 10:30 UTC)),
        ..Selection::default()
    };
    let plan = Plan::new(records(), &selection);
    assert_eq!(plan.len(), 1, "only acc_b's credit arrived after 10:30");
    let subject = Selection {
        subject: Some("acc_a".into()),
        ..Selection::default()
    };
    assert_eq!(Plan::new(records(), &subject).len(), 2);
    // Objects: by type and hour.
    assert!(selection.may_hold("events/account.credited/2026/11/22/10/s-1.ndjson.gz"));
    assert!(!selection.may_hold("events/account.credited/2026/11/22/09/s-1.ndjson.gz"));
    assert!(!selection.may_hold("events/account.opened/2026/11/22/11/s-1.ndjson.gz"));
    assert!(!Selection::default().may_hold("events/_undecodable/2026/11/22/11/s-1.ndjson.gz"));
}

#[tokio::test]
async fn waves_send_one_event_per_key_and_a_stopped_replay_resumes_where_it_stopped() {
    let dir = std::env::temp_dir().join(format!("tubes-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let _ = std::fs::remove_file(&file);
    let plan = Plan::new(records(), &Selection::default());
    let sink = Recorder::default();
    let mut state = ReplayState {
        id: "rpl_test".into(),
        ..ReplayState::default()
    };
    let mut seen = Vec::new();
    let ended = run(
        &plan,
        &sink,
        &mut state,
        &file,
        Some(3),
        &|| false,
        &mut |d, t| seen.push((d, t)),
    )
    .await
    .unwrap();
    assert_eq!(
        ended,
        Ended::Stopped,
        "the second wave would pass the limit"
    );
    assert_eq!(seen, [(2, 4)]);
    assert_eq!(ReplayState::load(&file).unwrap().unwrap(), state);

    // Run again from the saved state: the rest, nothing twice.
    let mut resumed = ReplayState::load(&file).unwrap().unwrap();
    let ended = run(
        &plan,
        &sink,
        &mut resumed,
        &file,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(ended, Ended::Done);
    let waves = sink.0.lock().unwrap().clone();
    let pair = |k: &str, s: &str| (k.to_owned(), s.to_owned());
    assert_eq!(
        waves,
        [
            vec![pair("acc_a", "1"), pair("acc_b", "9")],
            vec![pair("acc_a", "2"), pair("acc_b", "10")],
        ]
    );
    assert_eq!(resumed.events, 4);
    // A stop asked for before a wave sends nothing more.
    let mut fresh = ReplayState::default();
    let ended = run(
        &plan,
        &sink,
        &mut fresh,
        &file,
        None,
        &|| true,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((ended, fresh.events), (Ended::Stopped, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod switching {
    use std::time::Duration;

    use tubes_platform::read_model::{MemoryReadModels, Pointer, ReadModelStore};

    use super::*;

    async fn fold(store: &MemoryReadModels, version: &str, records: Vec<ArchivedRecord>) {
        let plan = Plan::new(records, &Selection::default());
        let sink = ReadModelSink::new(store, version);
        let mut state = ReplayState::default();
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("tubes-switch-{}-{n}", std::process::id()));
        run(
            &plan,
            &sink,
            &mut state,
            &file,
            None,
            &|| false,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        let _ = std::fs::remove_file(file);
    }

    async fn pointer(store: &MemoryReadModels, model: &str) -> Option<Pointer> {
        store.pointer(model).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_catches_the_new_version_up_then_points_every_model_at_it() {
        let store = MemoryReadModels::default();
        fold(&store, "v1", records()).await;
        // The rebuild saw the archive before acc_b's credit and its replay (archived later).
        fold(&store, "v2", records()[1..5].to_vec()).await;
        let mut rounds = 0;
        let report = switch(
            &store,
            &["accounts", "users"],
            "v2",
            || {
                rounds += 1;
                let store = &store;
                let catch_up = if rounds > 1 { records() } else { Vec::new() };
                async move {
                    fold(store, "v2", catch_up).await;
                    Ok(())
                }
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(report.rounds, 2, "covered after the second catch-up");
        assert_eq!(report.models[0], ("accounts".into(), "v1".into(), 2, 0));
        for model in ["accounts", "users"] {
            assert_eq!(
                pointer(&store, model).await,
                Some(Pointer {
                    live: "v2".into(),
                    paused: false
                })
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_version_that_never_covers_the_live_one_is_not_switched_to() {
        let store = MemoryReadModels::default();
        fold(&store, "v1", records()).await;
        fold(&store, "v2", records()[2..4].to_vec()).await;
        let err = switch(
            &store,
            &["accounts"],
            "v2",
            || async { Ok(()) },
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(err.contains("did not cover"), "{err}");
        assert_eq!(
            pointer(&store, "accounts").await,
            Some(Pointer {
                live: "v1".into(),
                paused: false
            }),
            "as it was: v1, unpaused"
        );
        let live = switch(
            &store,
            &["accounts"],
            "v1",
            || async { Ok(()) },
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(live.contains("live already"), "{live}");
    }
}

#[test]
fn the_events_of_one_packed_record_are_each_planned_in_their_order() {
    // One record (sequence 20) packed three credits of acc_c; the archive wrote them out of order, and one twice.
    let packed = |id: u64, sub: u64| {
        let mut r = record("acc_c", id, "account.credited", 10);
        r.at.sequence_number = "20".into();
        r.at.sub_sequence_number = Some(sub);
        r
    };
    let plan = Plan::new(
        vec![packed(32, 2), packed(30, 0), packed(31, 1), packed(30, 0)],
        &Selection::default(),
    );
    let ids: Vec<&str> = plan.lanes["acc_c"]
        .iter()
        .map(|i| i.envelope.id())
        .collect();
    assert_eq!(ids, ["e30", "e31", "e32"]);
}
