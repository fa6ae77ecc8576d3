//! Measurement helpers for tubes' benchmarks.
//!
//! Every figure is a **ratio** to a baseline measured in the same process, interleaved round by round with the
//! candidate, so machine speed and noise cancel out. See `benches/benches/hot_paths.rs` and `make bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};

/// The result of comparing a candidate with its baseline.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// Median time of one baseline iteration.
    pub baseline: Duration,
    /// Median time of one candidate iteration.
    pub candidate: Duration,
    /// Median over rounds of candidate time / baseline time.
    pub ratio: f64,
}

/// Runs `baseline` and `candidate` alternately for `rounds` rounds of `iters` iterations each and compares them.
///
/// One warm-up round of each runs first. The ratio is the median of the per-round ratios, which is robust to a
/// round disturbed by the rest of the machine.
pub fn compare<B, C, R1, R2>(
    rounds: usize,
    iters: usize,
    mut baseline: B,
    mut candidate: C,
) -> Comparison
where
    B: FnMut() -> R1,
    C: FnMut() -> R2,
{
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed() / u32::try_from(iters.max(1)).unwrap_or(u32::MAX)
    };
    let mut run_b = || {
        black_box(baseline());
    };
    let mut run_c = || {
        black_box(candidate());
    };
    time(&mut run_b);
    time(&mut run_c);

    let mut bs = Vec::with_capacity(rounds);
    let mut cs = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds.max(1) {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let (b, c) = if round % 2 == 0 {
            let b = time(&mut run_b);
            (b, time(&mut run_c))
        } else {
            let c = time(&mut run_c);
            (time(&mut run_b), c)
        };
        bs.push(b);
        cs.push(c);
        ratios.push(c.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    Comparison {
        baseline: median(&mut bs),
        candidate: median(&mut cs),
        ratio: median_f64(&mut ratios),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints one comparison as a table row.
pub fn report(name: &str, baseline_name: &str, c: &Comparison) {
    println!(
        "{name:<44} {:>12.2?} vs {baseline_name:<34} {:>12.2?}   ratio {:>5.2}x",
        c.candidate, c.baseline, c.ratio
    );
}

/// The `i`-th `payment.received` event of the benches as a producer writes it: members in CloudEvents order, not
/// sorted as `json!` sorts them (which parses faster than real events do).
pub fn payment_bytes(i: usize) -> Vec<u8> {
    let (id, key) = (format!("evt_{i:08}"), format!("acc_{}", i % 97));
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/shop/checkout","type":"payment.received","subject":"{key}","time":"2026-11-22T10:00:00Z","datacontenttype":"application/json","data":{{"payment_id":"pay_{i}","account_id":"{key}","amount":{amount},"currency":"EUR","payer_email":"ada@example.com"}}}}"#,
        amount = 1250 + i
    )
    .into_bytes()
}

/// A Kinesis event of `n` payment records, as Lambda hands it over: members in AWS's order (the structs of
/// [`kinesis_event`] serialised directly; through a `Value` they would come out sorted, which parses faster than
/// real payloads do) and each event in its producer's order ([`payment_bytes`]).
pub fn kinesis_event_bytes(n: usize) -> Vec<u8> {
    let records: Vec<StreamRecord> = (0..n)
        .map(|i| StreamRecord {
            sequence_number: SequenceNumber::from(format!(
                "4959033827149025660855969253836157109592157598913658{:04}",
                i % 10_000
            )),
            partition_key: format!("acc_{}", i % 97),
            data: payment_bytes(i),
            arrival: 1_795_000_000.123,
        })
        .collect();
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes-payments".into(),
    };
    serde_json::to_vec(&kinesis_event(&source, &records)).expect("serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_candidate_has_a_ratio_above_one() {
        let spin = |n: u64| (0..n).fold(0u64, |a, i| a.wrapping_add(black_box(i)));
        let c = compare(5, 20, || spin(1_000), || spin(10_000));
        assert!(c.ratio > 2.0, "{c:?}");
        assert!(c.candidate > c.baseline);
    }
}
