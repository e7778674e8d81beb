//! The worker as an AWS Lambda function triggered by SQS (feature
//! `lambda`).
//!
//! Lambda's SQS event source mapping receives the messages, invokes the
//! function with a batch of them ([`SqsEvent`]), and deletes those the
//! function reports done. [`handle_sqs_event`] handles each message of the
//! batch as [`Worker::run`] handles a message it receives, and answers with
//! the IDs of the messages that failed ([`SqsBatchResponse`]'s
//! `batchItemFailures`): one bad record never fails its neighbours, and
//! only the failed messages are delivered again. [`run`] serves
//! invocations until the execution environment is shut down.
//!
//! # Per message
//!
//! - Handled (processed, rejected, quarantined, already processed,
//!   skipped, `s3:TestEvent`): reported done; the event source mapping
//!   deletes it.
//! - A transient failure (storage, scanner, notifier, a panicking record
//!   handler): listed in `batchItemFailures`. It becomes visible again
//!   after the queue's visibility timeout (there is no per-message retry
//!   backoff as in [`Worker::run`]), and after the redrive policy's
//!   `maxReceiveCount` deliveries SQS moves it to the queue's dead-letter
//!   queue.
//! - A body that is not an S3 event at all
//!   ([`Error::is_malformed_message`](crate::Error::is_malformed_message)):
//!   exactly what the run loop does. With a dead-letter queue on the worker
//!   ([`Worker::with_dead_letter_queue`]) the body is sent there at once
//!   and the message reported done (so deleted); when that send fails, or
//!   without one, it is listed as failed and reaches the queue's
//!   dead-letter queue by the redrive policy.
//! - A failed message without a `messageId` (never the case for SQS) is
//!   listed with an empty identifier, which makes Lambda treat the whole
//!   batch as failed: nothing is lost.
//!
//! Nothing here deletes a message or changes its visibility: the worker's
//! own queue ([`Worker::new`]'s `queue`) is not used at all, so a
//! [`MemoryQueue`](crate::MemoryQueue) may stand in for it.
//!
//! # Event source mapping and queue settings
//!
//! - `FunctionResponseTypes: ["ReportBatchItemFailures"]` must be set on
//!   the event source mapping. Without it Lambda ignores
//!   `batchItemFailures`: an invocation that returns is taken as the whole
//!   batch done, and the failed messages are deleted with the others,
//!   never retried.
//! - The queue's visibility timeout should be at least six times the
//!   function's timeout (AWS's guidance), so that a batch whose invocation
//!   is throttled and retried is not delivered to another invocation
//!   meanwhile. A function timeout of 2 min goes with a visibility timeout
//!   of 12 min or more.
//! - `BatchSize` (1 to 10 without a batching window, up to 10 000 with
//!   `MaximumBatchingWindowInSeconds`): the messages of one batch are
//!   handled [`WorkerConfig::max_in_flight`](crate::WorkerConfig::max_in_flight)
//!   at once, so the function timeout must cover about
//!   `ceil(BatchSize / max_in_flight)` times the slowest upload. A batch
//!   size equal to `max_in_flight` (default 4) is a good start. An
//!   invocation that times out fails its whole batch.
//! - A redrive policy on the queue (`maxReceiveCount`, e.g. 5, and a
//!   dead-letter queue): the end of the road of failing messages.

use std::convert::Infallible;

use futures::StreamExt as _;
use tracing::Instrument as _;

pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
pub use lambda_runtime::{Context, LambdaEvent};

use crate::error::{Error, Result};
use crate::worker::{RunStats, Worker};

/// The environment variables the Lambda runtime sets and [`run`] needs.
pub const LAMBDA_ENVIRONMENT: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Handles the messages of one SQS-triggered invocation, at most
/// `worker.config().max_in_flight` at once, and returns the IDs of those
/// that failed, in the batch's order (see the [module](self) docs for what
/// fails and what is reported done). Never fails as a whole: a failure is
/// a message's own. The counts are added to the worker's
/// [`Health`](crate::Health) stats and its [metrics](crate::metrics).
pub async fn handle_sqs_event(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let max = worker.config().max_in_flight.max(1);
    let results: Vec<(RunStats, Option<String>)> = futures::stream::iter(event.records)
        .map(|m| handle_message(worker, m))
        .buffered(max)
        .collect()
        .await;
    let mut stats = RunStats::default();
    let mut response = SqsBatchResponse::default();
    for (s, failed) in results {
        stats.add(&s);
        if let Some(id) = failed {
            response.add_failure(id);
        }
    }
    worker.health().add_stats(&stats);
    crate::metrics::record_stats(&stats);
    tracing::info!(
        messages = stats.messages,
        failed = stats.failed,
        dead_lettered = stats.dead_lettered,
        clean = stats.clean,
        quarantined = stats.quarantined(),
        rejected = stats.rejected,
        already_processed = stats.already_processed,
        "batch handled"
    );
    response
}

/// One message: its counts, and its ID when it failed.
async fn handle_message(worker: &Worker, msg: SqsMessage) -> (RunStats, Option<String>) {
    let id = msg.message_id.unwrap_or_default();
    let receive_count: u32 = msg
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let span = tracing::info_span!("message", message_id = %id, receive_count);
    async {
        let body = msg.body.unwrap_or_default();
        let mut stats = RunStats {
            messages: 1,
            retried: u64::from(receive_count > 1),
            ..RunStats::default()
        };
        match worker.handle_body(&body).await {
            Ok(s) => {
                stats.add(&s);
                (stats, None)
            }
            Err(e) => {
                let malformed = e.is_malformed_message();
                if malformed {
                    tracing::error!(error = %e, body_bytes = body.len(), "not an S3 event message");
                }
                if malformed && worker.move_to_dead_letter(&body).await {
                    stats.dead_lettered += 1;
                    (stats, None)
                } else {
                    stats.failed += 1;
                    tracing::error!(error = %e, "message reported failed; redelivered after the visibility timeout");
                    (stats, Some(id))
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Serves SQS-triggered invocations with `worker` until the execution
/// environment is shut down: the Lambda runtime API loop
/// (`lambda_runtime::run`), each invocation answered by
/// [`handle_sqs_event`]. A payload that is not an SQS event is answered
/// with an invocation error (the runtime's), so Lambda retries the batch.
///
/// # Errors
/// - [`Error::LambdaEnvironment`] before anything else when one of
///   [`LAMBDA_ENVIRONMENT`] is not set (not running under Lambda or an
///   emulator).
/// - [`Error::LambdaRuntime`] when the runtime API client stops (the
///   runtime API refuses or drops a request).
pub async fn run(worker: Worker) -> Result<()> {
    check_environment(|name| std::env::var(name).ok())?;
    let worker = &worker;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<_, Infallible>(handle_sqs_event(worker, event.payload).await)
        },
    ))
    .await
    .map_err(|e| Error::LambdaRuntime {
        reason: e.to_string(),
    })
}

/// The first of [`LAMBDA_ENVIRONMENT`] that `var` does not find, as an
/// error; `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` must also be a whole number
/// (the runtime client panics otherwise).
fn check_environment(var: impl Fn(&str) -> Option<String>) -> Result<()> {
    for name in LAMBDA_ENVIRONMENT {
        let Some(value) = var(name) else {
            return Err(Error::LambdaEnvironment {
                name,
                problem: "is not set",
            });
        };
        if name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" && value.parse::<i32>().is_err() {
            return Err(Error::LambdaEnvironment {
                name,
                problem: "is not a whole number",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_bad_lambda_environment_is_a_typed_error() {
        let full = |name: &str| match name {
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("1024".to_owned()),
            _ => Some("x".to_owned()),
        };
        assert!(check_environment(full).is_ok());
        let no_api = |name: &str| {
            (name != "AWS_LAMBDA_RUNTIME_API")
                .then(|| full(name))
                .flatten()
        };
        assert!(matches!(
            check_environment(no_api),
            Err(Error::LambdaEnvironment {
                name: "AWS_LAMBDA_RUNTIME_API",
                ..
            })
        ));
        let bad_memory = |name: &str| match name {
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("lots".to_owned()),
            _ => Some("x".to_owned()),
        };
        let err = check_environment(bad_memory).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not running under AWS Lambda: AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a whole number"
        );
    }
}
