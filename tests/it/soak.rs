//! The small soak of `make test`: two thousand events through the whole local stack (`template.yaml`, debug
//! builds) while the fault schedule runs (at least 8 of its 11 kinds), reconciled from the stores. The full one is
//! `make soak` (README, "Soak").

use tubes_tests::soak;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_under_the_fault_schedule_loses_doubles_reorders_and_parks_nothing() {
    let settings = soak::Settings {
        // Enough events that the stack is still busy when the eighth kind of fault comes round (1,000 were
        // applied in 74 s, after 7 kinds, once moto and the mapping emulator got faster).
        events: 2_000,
        fault_every: 5,
        release: false,
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
    assert!(report.ok(), "{report}");
}
