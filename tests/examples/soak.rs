//! The soak (`make soak`): events through the whole local stack while a fault schedule runs, reconciled from
//! the stores (see `tubes_tests::soak`). Prints the figures; exits non-zero on any loss, double, reordering or
//! parked record.
//!
//! Usage: cargo run --release -p tubes-tests --example soak [-- EVENTS [FAULT_EVERY [debug]]]  (defaults 100,000
//! events, a fault every 30 s, release builds of the functions)

use tubes_tests::soak;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let fault_every: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let release = args.next().as_deref() != Some("debug");
    let settings = soak::Settings {
        events,
        fault_every,
        release,
        send_rate: None,
    };
    let report = soak::run(settings, &std::env::temp_dir().join("tubes-soak")).await;
    print!("{report}");
    if !report.ok() {
        std::process::exit(1);
    }
}
