//! The Rust side of `make bench-powertools`: writes the consumer bench's 10,000-record Kinesis event to a file,
//! and times the consumer's decode of a file ([`KinesisBatch::from_payload`], what every consumer runs) and the
//! bare `serde_json` parse into `KinesisEvent` (the baseline of `make bench ARGS=consumer`) in the same process.
//!
//! ```text
//! decode_payload write PATH            the payload of `make bench ARGS=consumer`
//! decode_payload time PATH ITERATIONS  one JSON line: seconds per decode, per baseline parse, records
//! ```

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use aws_lambda_events::event::kinesis::KinesisEvent;
use tubes_platform::KinesisBatch;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", path] => match std::fs::write(path, tubes_bench::kinesis_event_bytes(10_000)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&format!("cannot write {path}: {err}")),
        },
        ["time", path, iterations] => {
            let Ok(iterations) = iterations.parse::<u32>() else {
                return fail(&format!("ITERATIONS must be a number, not {iterations:?}"));
            };
            let payload = match std::fs::read(path) {
                Ok(payload) => payload,
                Err(err) => return fail(&format!("cannot read {path}: {err}")),
            };
            let records = match KinesisBatch::from_payload(&payload) {
                Ok(batch) => batch.records.len(),
                Err(err) => return fail(&format!("{path} is not a Kinesis event: {err}")),
            };
            let time = |f: &dyn Fn() -> usize| {
                let start = Instant::now();
                for _ in 0..iterations.max(1) {
                    black_box(f());
                }
                start.elapsed().as_secs_f64() / f64::from(iterations.max(1))
            };
            let decode = time(&|| {
                KinesisBatch::from_payload(&payload).map_or(0, |batch| batch.records.len())
            });
            let baseline = time(&|| {
                serde_json::from_slice::<KinesisEvent>(&payload)
                    .map_or(0, |event| event.records.len())
            });
            println!(
                "{}",
                serde_json::json!({"decode_s": decode, "serde_json_s": baseline, "records": records})
            );
            ExitCode::SUCCESS
        }
        _ => fail("usage: decode_payload write PATH | decode_payload time PATH ITERATIONS"),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("decode_payload: {message}");
    ExitCode::from(2)
}
