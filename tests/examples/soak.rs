//! The soak (`make soak`): events through the whole local stack while a fault schedule runs, reconciled from
//! the stores (see `tubes_tests::soak`). Prints the figures; exits non-zero on any loss, double or parked record.
//!
//! Usage: cargo run -p tubes-tests --example soak [-- EVENTS [FAULT_EVERY]]  (defaults 2000 events, a fault
//! every 20 s)

use std::sync::Arc;

use tubes_tests::{soak, LocalStack};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let fault_every: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let stack = Arc::new(LocalStack::start(
        "template.yaml",
        &std::env::temp_dir().join("tubes-soak"),
    ));
    let report = soak::run(stack.clone(), events, fault_every).await;
    // Stops the stack (exit skips destructors).
    drop(stack);
    print!("{report}");
    if !report.ok() {
        std::process::exit(1);
    }
}
