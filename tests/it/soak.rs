//! The small soak of `make test`: a few hundred events through the whole local stack (`template.yaml`) while
//! consumers, ingest and the mapping emulator are killed and moto is stopped, reconciled from the stores. The
//! full one is `make soak` (README, "Soak").

use std::sync::Arc;

use tubes_tests::{soak, LocalStack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_under_faults_loses_doubles_and_parks_nothing() {
    let stack = Arc::new(LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    ));
    let report = soak::run(stack, 300, 10).await;
    eprint!("{report}");
    assert_eq!(
        report.events,
        report.payments + report.credits + report.signups + report.accounts
    );
    assert!(
        report.faults.values().sum::<u64>() >= 3,
        "the faults ran: {:?}",
        report.faults
    );
    assert!(report.ok(), "{report}");
}
