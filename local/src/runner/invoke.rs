//! One invocation of the mapped function through the Lambda Invoke API, read as Lambda reads it; and the
//! on-failure message when the mapping gives up on records.

use std::time::Duration;

use serde_json::json;
use tubes_platform::aws;
use tubes_platform::dead_letters::sqs;
use tubes_platform::lambda_event::{
    function_error, kinesis_event, BatchSource, Condition, Invocation, OnFailure, StreamRecord,
};

use super::Emulator;

/// How often an invocation in flight looks for ended instances of its function.
const ENDED_POLL: Duration = Duration::from_millis(250);

/// The file in the state directory where `dev.sh` writes one line per function instance that ended (the
/// function's binary): `dev.sh` supervises the instances it runs itself (no live reload).
const ENDED_INSTANCES: &str = "ended-instances";

impl Emulator {
    /// How many instances of `binary` have ended so far, as `dev.sh` reports them in [`ENDED_INSTANCES`].
    async fn instances_ended(&self, binary: &str) -> usize {
        let Some(dir) = &self.settings.state_dir else {
            return 0;
        };
        tokio::fs::read_to_string(dir.join(ENDED_INSTANCES))
            .await
            .map(|text| text.lines().filter(|l| *l == binary).count())
            .unwrap_or(0)
    }

    pub(super) async fn invoke(
        &self,
        i: usize,
        shard: &str,
        records: &[StreamRecord],
    ) -> Invocation {
        let function = self.function(i);
        let source = BatchSource {
            event_source_arn: self.stream_arn(i),
            shard_id: shard.to_owned(),
            aws_region: self.settings.region.clone(),
            invoke_identity_arn: format!(
                "arn:aws:iam::{}:role/{}Role",
                self.settings.account, function.logical_id
            ),
        };
        let body = match serde_json::to_vec(&kinesis_event(&source, records)) {
            Ok(body) => body,
            Err(e) => {
                return Invocation::FunctionError(format!("the event did not serialise: {e}"))
            }
        };
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.settings.lambda_endpoint, function.binary
        );
        loop {
            // `cargo lambda watch` compiles a function on its first invocation: give that one time to build.
            let warm = self
                .warmed
                .lock()
                .map(|w| w.contains(&function.binary))
                .unwrap_or(false);
            let timeout = if warm {
                function.timeout + Duration::from_secs(1)
            } else {
                Duration::from_secs(600)
            };
            let ended_before = self.instances_ended(&function.binary).await;
            let sent = self
                .http
                .post(&url)
                .body(body.clone())
                .timeout(timeout)
                .send();
            tokio::pin!(sent);
            // An instance that dies mid-invocation never answers, and `cargo lambda watch` keeps the invocation
            // open until the timeout: fail it as Lambda does ("Runtime exited") once `dev.sh` reports the end.
            let sent = loop {
                tokio::select! {
                    sent = &mut sent => break sent,
                    () = tokio::time::sleep(ENDED_POLL) => {
                        if self.instances_ended(&function.binary).await > ended_before {
                            return Invocation::FunctionError(format!(
                                "an instance of {} ended during the invocation (Runtime exited)",
                                function.binary
                            ));
                        }
                    }
                }
            };
            match sent {
                Ok(resp) => {
                    if let Ok(mut w) = self.warmed.lock() {
                        w.insert(function.binary.clone());
                    }
                    let status = resp.status();
                    let errored = resp.headers().get("x-amz-function-error").is_some();
                    let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    return if status.is_success() && !errored {
                        Invocation::Returned(bytes)
                    } else {
                        // Lambda's error document when there is one (`cargo lambda watch` sends it with a 500).
                        let text = function_error(&bytes).unwrap_or_else(|| {
                            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
                        });
                        Invocation::FunctionError(format!("{status}: {text}"))
                    };
                }
                Err(e) if e.is_timeout() => return Invocation::TimedOut,
                Err(e) => {
                    // The runtime emulator is not there (starting, reloading): not the function's failure,
                    // so no retry attempt is spent; wait and try again.
                    self.view.note(
                        "invoke",
                        &format!("{}: {e}; retrying", function.binary),
                        json!({}),
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The messages waiting in mapping `i`'s on-failure queue (the consumer's dead-letter queue, where the harness
    /// parks records too), visible or in flight; `None` without one or when SQS does not answer.
    pub(super) async fn parked(&self, i: usize) -> Option<u64> {
        let queue = self.mapping(i).on_failure.as_ref()?;
        let (url, _) = self.resolved.queues.get(queue)?;
        let sqs = self.sqs.as_ref()?;
        Some(sqs::depth(sqs, url).await.ok()?.total())
    }

    pub(super) async fn on_failure(
        &self,
        i: usize,
        shard: &str,
        records: &[StreamRecord],
        condition: Condition,
        invocations: u32,
    ) {
        let m = self.mapping(i);
        let function = self.function(i);
        let seqs: Vec<&str> = records.iter().map(|r| r.sequence_number.as_str()).collect();
        let Some(queue) = &m.on_failure else {
            self.view.dead_letter(
                &function.logical_id,
                shard,
                condition.as_str(),
                &seqs,
                "(none: discarded)",
            );
            return;
        };
        let (url, _) = self.resolved.queues.get(queue).cloned().unwrap_or_default();
        let stream_arn = self.stream_arn(i);
        let message = OnFailure::new(
            &format!(
                "arn:aws:lambda:{}:{}:function:{}",
                self.settings.region, self.settings.account, function.binary
            ),
            &stream_arn,
            shard,
            records,
            condition.clone(),
            invocations,
        );
        let Ok(body) = serde_json::to_string(&message) else {
            return;
        };
        let Some(sqs) = &self.sqs else { return };
        let mut attempt = 0u32;
        loop {
            match sqs
                .send_message()
                .queue_url(&url)
                .message_body(&body)
                .send()
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 30 => {
                    attempt += 1;
                    self.view.note(
                        "error",
                        &format!("{queue}: {}", aws::describe("SendMessage", e)),
                        json!({}),
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break,
            }
        }
        self.view.dead_letter(
            &function.logical_id,
            shard,
            condition.as_str(),
            &seqs,
            queue,
        );
    }
}
