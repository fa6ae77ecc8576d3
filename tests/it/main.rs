//! Integration tests: tubes against real emulators (one test binary, a module per area).
// Test helpers outside `#[test]` functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod archive;
mod consumers;
mod contract;
mod dead_letters;
mod dev_stack;
mod dev_tool;
mod dlq_cli;
mod docs_commands;
mod esm;
mod event_status;
mod idempotency;
mod ingest_auth;
mod ingest_faults;
mod kpl;
mod live_reload;
mod local_stack;
mod mail;
mod moto;
mod ordering;
mod outage;
mod packing;
mod payments;
mod pipeline;
mod redrive;
mod replay;
mod schema_examples;
mod schemas;
mod soak;
mod users;
