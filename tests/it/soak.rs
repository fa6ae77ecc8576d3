//! The small soak of `make test`: two thousand events through the whole local stack (`template.yaml`, debug
//! builds) while the fault schedule runs (at least 8 of its 13 kinds), reconciled from the stores. The full one is
//! `make soak` (README, "Soak").

use tubes_tests::soak;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_under_the_fault_schedule_loses_doubles_reorders_and_parks_nothing() {
    let settings = soak::Settings {
        // Sent over 100 s, so that the stack is still busy when the eighth kind of fault comes round (the first
        // eight take about 75 s; unpaced, 2,000 events were applied in 42 s, after 4 kinds).
        events: 2_000,
        fault_every: 5,
        release: false,
        send_rate: Some(20.0),
    };
    let report = soak::run(settings, std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).await;
    eprint!("{report}");
    assert_eq!(
        report.events,
        report.accounts + report.credits + report.payments + report.signups + report.unsubscribes
    );
    assert!(
        report.faults.len() >= 8,
        "most kinds of fault ran: {:?}",
        report.faults
    );
    assert!(
        report.archived >= report.events,
        "the event store holds every record: {report}"
    );
    assert!(
        report.read_models_checked > 0,
        "the read models were compared: {report}"
    );
    assert!(report.ok(), "{report}");
}
