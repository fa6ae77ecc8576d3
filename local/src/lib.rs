//! The local stack of tubes: the whole pipeline on one machine, no AWS account, no Docker.
//!
//! - [`app`]: what `template.yaml` declares (streams, queues, functions, Kinesis event source mappings), read from
//!   the SAM-expanded template.
//! - [`stack`]: those resources created on the local emulators, and the functions' environment resolved to them.
//! - [`filter`]: Lambda's event filtering pattern syntax.
//! - [`esm`]: the event source mapping's checkpoint / bisect / retry / on-failure decisions, as a pure state
//!   machine.
//! - [`runner`]: the event source mapping emulator: shard readers, lanes, invocations through the Lambda Invoke
//!   API that `cargo lambda watch` serves.
//! - [`view`]: the live view.
//! - [`logs`]: the functions' log files: split per function, pretty-printed, gathered per event or trace.

pub mod app;
pub mod esm;
pub mod filter;
pub mod logs;
pub mod runner;
pub mod stack;
pub mod view;
