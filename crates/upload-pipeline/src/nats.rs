//! [`NatsQueue`], the [`Queue`] trait on NATS JetStream (`async-nats`,
//! feature `nats`): the queue MinIO's bucket notifications reach through
//! its `notify_nats` target with JetStream on (MinIO never sends to SQS).
//!
//! SQS's semantics mapped onto JetStream:
//!
//! | SQS | JetStream |
//! |---|---|
//! | queue | a stream (work-queue retention: an acked message leaves it) and one durable pull consumer on it |
//! | `SendMessage` | a JetStream publish to the stream's subject, awaiting the publish ack |
//! | `ReceiveMessage` (long poll) | a one-shot pull request (`no_wait` with `expires`): returns as soon as messages are there, or empty when the wait ends |
//! | visibility timeout | the consumer's ack wait; another timeout for one receive is a `-NAK {"delay":…}` right after the delivery |
//! | `ChangeMessageVisibility` | `+WPI` (in progress: the ack wait again) when the timeout equals the ack wait, otherwise `-NAK {"delay":…}`; 0 is a plain `-NAK` (redelivered at once) |
//! | `DeleteMessage` | `+ACK`, sent as a request so the server confirms it |
//! | `ApproximateReceiveCount` | the delivery count of the message's metadata |
//! | redrive policy | a delivery whose count is over `max_receive_count` is published to the dead-letter subject (its body, deduplicated by `Nats-Msg-Id`) and terminated (`+TERM`) instead of returned |
//! | message ID | the stream sequence number, in decimal |
//!
//! **Receipt handles.** JetStream acknowledges whatever delivery an ack
//! subject names: an ack (or `+WPI`, or `-NAK`) sent for an earlier
//! delivery acts on the current one (nats-server's `processAckMsg` looks up
//! the message by stream sequence only). SQS does not: a handle of an
//! earlier delivery deletes nothing. So a [`NatsQueue`] keeps the current
//! delivery of every message it received, and its handles are
//! `{stream seq}:{delivery seq}:{tag}` with a tag keyed by this
//! `NatsQueue` value: unforgeable, and refused by another `NatsQueue`
//! ([`Error::ReceiptHandleIsInvalid`]). A handle is stale once the message
//! was delivered again to this queue, released (visibility 0), or its
//! visibility timeout has run out as measured here (from before the pull
//! request, so never later than the server's): delete then succeeds
//! without deleting and [`Queue::change_visibility`] answers
//! [`Error::MessageNotInflight`]. Unlike SQS, a handle whose timeout ran
//! out no longer deletes even if no one received the message since; the
//! message is delivered again (at least once, as ever).
//!
//! **Dead letters.** The move happens in [`Queue::receive`], as SQS does
//! it on `ReceiveMessage`; the consumer's `max_deliver` stays unlimited so
//! that a move that failed half-way (dead-letter stream unreachable) is
//! tried again at the next delivery. The dead-letter subject must be
//! captured by a stream, e.g. another [`NatsQueue`]'s.
//!
//! **Bodies** follow SQS's limits ([`crate::queue::MAX_MESSAGE_BYTES`],
//! its character set) on send so the same events fit both queues;
//! received payloads that are not UTF-8 (none of MinIO's) are decoded
//! lossily.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, HeaderMap};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::join_all;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::queue::{
    DEFAULT_VISIBILITY_TIMEOUT, Queue, QueueMessage, ReceiveOptions, check_body,
    check_max_receive_count, check_visibility,
};

/// The `async-nats` version this crate is built with.
pub use async_nats;

/// Default retention of an unreceived message: 4 days (SQS's default).
pub const DEFAULT_MESSAGE_RETENTION: Duration = Duration::from_secs(4 * 24 * 3600);

/// The redrive policy of a [`NatsQueue`]: after `max_receive_count`
/// deliveries without a delete, the next receive moves the message to
/// `dead_letter_subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsRedrive {
    /// Deliveries before a message is dead-lettered, 1..=1000 (SQS's
    /// `maxReceiveCount` limits).
    pub max_receive_count: u32,
    /// Subject the dead letters are published to, e.g. `uploads.dlq`; a
    /// stream must capture it.
    pub dead_letter_subject: String,
}

/// Stream and consumer of a [`NatsQueue`] made by [`NatsQueue::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsQueueConfig {
    /// Stream name, e.g. `UPLOADS` (no `.`, `*`, `>` or whitespace).
    pub stream: String,
    /// Subject the stream captures and [`Queue::send`] publishes to, e.g.
    /// `minio.uploads` (MinIO's `subject`).
    pub subject: String,
    /// Durable consumer name, e.g. `worker`.
    pub consumer: String,
    /// Default visibility timeout: the consumer's ack wait, 1 ms..=12 h;
    /// default 30 s (SQS's).
    pub visibility_timeout: Duration,
    /// How long the stream keeps an unreceived message (its `max_age`),
    /// 60 s..=14 days as SQS; default 4 days.
    pub message_retention: Duration,
    /// The dead-letter subject and the deliveries before it, if any.
    pub redrive: Option<NatsRedrive>,
}

impl NatsQueueConfig {
    /// A queue on stream `stream` capturing `subject`, read by the durable
    /// consumer `consumer`; 30 s visibility timeout, 4 days retention, no
    /// dead-letter subject.
    pub fn new(
        stream: impl Into<String>,
        subject: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        Self {
            stream: stream.into(),
            subject: subject.into(),
            consumer: consumer.into(),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            message_retention: DEFAULT_MESSAGE_RETENTION,
            redrive: None,
        }
    }

    /// Sets the default visibility timeout (the consumer's ack wait).
    pub fn with_visibility_timeout(mut self, t: Duration) -> Self {
        self.visibility_timeout = t;
        self
    }

    /// Sets the message retention (the stream's `max_age`).
    pub fn with_message_retention(mut self, t: Duration) -> Self {
        self.message_retention = t;
        self
    }

    /// Sets the redrive policy: after `max_receive_count` deliveries a
    /// message moves to `dead_letter_subject`.
    pub fn with_redrive(
        mut self,
        max_receive_count: u32,
        dead_letter_subject: impl Into<String>,
    ) -> Self {
        self.redrive = Some(NatsRedrive {
            max_receive_count,
            dead_letter_subject: dead_letter_subject.into(),
        });
        self
    }

    fn validate(&self) -> Result<()> {
        for (name, value) in [("stream", &self.stream), ("consumer", &self.consumer)] {
            if value.is_empty()
                || value
                    .chars()
                    .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace())
            {
                return Err(Error::InvalidQueueParameter {
                    name,
                    reason: format!("{value:?} is empty or has '.', '*', '>' or whitespace"),
                });
            }
        }
        let subjects = std::iter::once(("subject", &self.subject)).chain(
            self.redrive
                .as_ref()
                .map(|r| ("dead_letter_subject", &r.dead_letter_subject)),
        );
        for (name, value) in subjects {
            if value.is_empty()
                || value
                    .chars()
                    .any(|c| matches!(c, '*' | '>') || c.is_whitespace())
                || value.split('.').any(str::is_empty)
            {
                return Err(Error::InvalidQueueParameter {
                    name,
                    reason: format!(
                        "{value:?} is not a literal subject (empty token, wildcard or whitespace)"
                    ),
                });
            }
        }
        check_visibility(self.visibility_timeout)?;
        if self.visibility_timeout < Duration::from_millis(1) {
            return Err(Error::InvalidQueueParameter {
                name: "visibility_timeout",
                reason: "the consumer's ack wait must be at least 1 ms".into(),
            });
        }
        let retention = self.message_retention.as_secs();
        if !(60..=14 * 24 * 3600).contains(&retention) {
            return Err(Error::InvalidQueueParameter {
                name: "message_retention",
                reason: format!("{retention} s is outside 60 s..=14 days"),
            });
        }
        if let Some(r) = &self.redrive {
            check_max_receive_count(r.max_receive_count)?;
            if r.dead_letter_subject == self.subject {
                return Err(Error::InvalidQueueParameter {
                    name: "dead_letter_subject",
                    reason: "is the queue's own subject".into(),
                });
            }
        }
        Ok(())
    }
}

/// The delivery of a message this queue handed out last.
#[derive(Debug)]
struct Delivery {
    /// The consumer sequence of the delivery (new at every delivery).
    delivery_seq: u64,
    /// The ack subject of the delivery (`$JS.ACK.…`).
    reply: String,
    /// When the delivery's visibility timeout runs out, measured from
    /// before the request that set it.
    visible_until: Instant,
}

/// A [`Queue`] on a NATS JetStream stream and durable pull consumer, with
/// SQS's semantics (see the [module docs](self)).
#[derive(Debug)]
pub struct NatsQueue {
    client: Client,
    js: Context,
    consumer: PullConsumer,
    stream: String,
    subject: String,
    ack_wait: Duration,
    redrive: Option<NatsRedrive>,
    /// Current deliveries by stream sequence.
    deliveries: Mutex<HashMap<u64, Delivery>>,
    /// Keys the tag that makes receipt handles unforgeable.
    handle_key: RandomState,
}

fn unavailable(operation: &str, target: &str, e: impl std::fmt::Display) -> Error {
    Error::QueueUnavailable {
        reason: format!("NATS {operation} {target}: {e}"),
    }
}

impl NatsQueue {
    /// Creates the stream (work-queue retention, file storage, `max_age`
    /// the retention) unless one of that name exists, and creates or
    /// updates the durable pull consumer (explicit acks, ack wait the
    /// visibility timeout, unlimited deliveries). `client` must reach a
    /// server with JetStream on.
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] for a configuration outside the
    /// limits above; [`Error::Nats`] when the server refuses the stream or
    /// consumer (e.g. a stream of another name already captures the
    /// subject); [`Error::QueueUnavailable`] when it cannot be reached or
    /// has no JetStream.
    pub async fn create(client: Client, config: &NatsQueueConfig) -> Result<Self> {
        config.validate()?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.subject.clone()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                max_age: config.message_retention,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                use async_nats::jetstream::context::CreateStreamErrorKind as K;
                match e.kind() {
                    K::JetStream(_)
                    | K::EmptyStreamName
                    | K::InvalidStreamName
                    | K::DomainAndExternalSet => Error::Nats {
                        operation: "create stream",
                        message: format!("{}: {e}", config.stream),
                    },
                    _ => unavailable("create stream", &config.stream, e),
                }
            })?;
        let consumer: PullConsumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(config.consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: config.visibility_timeout,
                max_deliver: -1,
                filter_subject: config.subject.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                use async_nats::jetstream::stream::ConsumerErrorKind as K;
                match e.kind() {
                    K::JetStream(_) | K::InvalidName | K::InvalidConsumerType => Error::Nats {
                        operation: "create consumer",
                        message: format!("{} on {}: {e}", config.consumer, config.stream),
                    },
                    _ => unavailable("create consumer", &config.consumer, e),
                }
            })?;
        let ack_wait = consumer.cached_info().config.ack_wait;
        Ok(Self {
            client,
            js,
            consumer,
            stream: config.stream.clone(),
            subject: config.subject.clone(),
            ack_wait,
            redrive: config.redrive.clone(),
            deliveries: Mutex::new(HashMap::new()),
            handle_key: RandomState::new(),
        })
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subject [`Queue::send`] publishes to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The default visibility timeout: the consumer's ack wait as the
    /// server reported it.
    pub fn visibility_timeout(&self) -> Duration {
        self.ack_wait
    }

    /// Messages in the stream, in flight or not (the stream's message
    /// count; work-queue retention drops acked ones).
    ///
    /// # Errors
    /// [`Error::QueueUnavailable`].
    pub async fn approximate_len(&self) -> Result<u64> {
        let mut stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| unavailable("stream info", &self.stream, e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| unavailable("stream info", &self.stream, e))?;
        Ok(info.state.messages)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Delivery>> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, stream_seq: u64, delivery_seq: u64) -> String {
        let tag = self.handle_key.hash_one((stream_seq, delivery_seq));
        format!("{stream_seq:x}:{delivery_seq:x}:{tag:016x}")
    }

    /// `(stream seq, delivery seq)` of a handle this queue issued.
    fn parse_handle(&self, handle: &str) -> Result<(u64, u64)> {
        let invalid = || Error::ReceiptHandleIsInvalid {
            receipt_handle: handle.chars().take(200).collect(),
        };
        let mut parts = handle.split(':');
        let mut hex = || {
            parts
                .next()
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or_else(invalid)
        };
        let (sseq, dseq, tag) = (hex()?, hex()?, hex()?);
        if parts.next().is_some() || self.handle_key.hash_one((sseq, dseq)) != tag {
            return Err(invalid());
        }
        Ok((sseq, dseq))
    }

    /// Takes the current, still invisible delivery of `handle` out of the
    /// table: `Ok(None)` for a stale handle.
    fn take_current(&self, handle: &str) -> Result<Option<(u64, Delivery)>> {
        let (sseq, dseq) = self.parse_handle(handle)?;
        let mut table = self.lock();
        let current = table.get(&sseq).is_some_and(|d| d.delivery_seq == dseq);
        if !current {
            return Ok(None);
        }
        let d = table.remove(&sseq).expect("checked above");
        Ok((d.visible_until > Instant::now()).then_some((sseq, d)))
    }

    /// Sends `kind` on a delivery's ack subject and waits for the server's
    /// confirmation.
    async fn ack_request(&self, reply: &str, kind: AckKind) -> Result<()> {
        self.client
            .request(reply.to_owned(), Bytes::from(kind))
            .await
            .map(|_| ())
            .map_err(|e| unavailable("ack", &self.stream, e))
    }

    /// Publishes a delivery's body to the dead-letter subject, then
    /// terminates the delivery. On failure the message stays in flight and
    /// comes back after the ack wait.
    async fn dead_letter(
        &self,
        redrive: &NatsRedrive,
        stream_seq: u64,
        receives: i64,
        reply: &str,
        payload: Bytes,
    ) -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("dlq:{}:{stream_seq}", self.stream).as_str(),
        );
        headers.insert("Upload-Sdk-Source-Stream", self.stream.as_str());
        self.js
            .publish_with_headers(redrive.dead_letter_subject.clone(), headers, payload)
            .await
            .map_err(|e| unavailable("publish", &redrive.dead_letter_subject, e))?
            .await
            .map_err(|e| unavailable("publish ack", &redrive.dead_letter_subject, e))?;
        self.ack_request(reply, AckKind::Term).await?;
        tracing::warn!(stream = %self.stream, dlq = %redrive.dead_letter_subject, stream_seq, receives, "moved to the dead-letter subject");
        Ok(())
    }

    /// One pull request: up to `max` messages, waiting up to `wait` for
    /// the first. Returns the deliveries to hand out.
    async fn pull(&self, max: usize, wait: Duration, vt: Duration) -> Result<Vec<QueueMessage>> {
        let started = Instant::now();
        let mut fetch = self.consumer.fetch().max_messages(max);
        if !wait.is_zero() {
            fetch = fetch.expires(wait);
        }
        let mut batch = fetch
            .messages()
            .await
            .map_err(|e| unavailable("pull", &self.stream, e))?;
        let mut got = Vec::new();
        while let Some(m) = batch.next().await {
            got.push(m.map_err(|e| unavailable("pull", &self.stream, e))?);
        }
        let visible_until = started + vt;
        let mut out = Vec::with_capacity(got.len());
        let mut set_visibility = Vec::new();
        for m in got {
            let Some(reply) = m.reply.as_ref().map(|r| r.to_string()) else {
                continue;
            };
            let info = m
                .info()
                .map_err(|e| unavailable("message metadata", &self.stream, e))?;
            let (sseq, dseq, delivered) =
                (info.stream_sequence, info.consumer_sequence, info.delivered);
            if let Some(r) = &self.redrive
                && delivered > i64::from(r.max_receive_count)
            {
                self.lock().remove(&sseq);
                if let Err(e) = self
                    .dead_letter(r, sseq, delivered - 1, &reply, m.payload.clone())
                    .await
                {
                    tracing::warn!(stream = %self.stream, stream_seq = sseq, error = %e, "dead-lettering failed; retried at the next delivery");
                }
                continue;
            }
            if vt != self.ack_wait {
                let kind = if vt.is_zero() {
                    AckKind::Nak(None)
                } else {
                    AckKind::Nak(Some(vt))
                };
                set_visibility.push((reply.clone(), kind));
            }
            self.lock().insert(
                sseq,
                Delivery {
                    delivery_seq: dseq,
                    reply,
                    visible_until,
                },
            );
            out.push(QueueMessage {
                message_id: sseq.to_string(),
                body: String::from_utf8_lossy(&m.payload).into_owned(),
                receipt_handle: self.handle(sseq, dseq),
                receive_count: u32::try_from(delivered).unwrap_or(u32::MAX),
            });
        }
        let results = join_all(
            set_visibility
                .into_iter()
                .map(|(reply, kind)| async move { self.ack_request(&reply, kind).await }),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(out)
    }
}

#[async_trait]
impl Queue for NatsQueue {
    /// A JetStream publish to the queue's subject; returns the stream
    /// sequence of the publish ack.
    async fn send(&self, body: String) -> Result<String> {
        check_body(&body)?;
        let ack = self
            .js
            .publish(self.subject.clone(), Bytes::from(body))
            .await
            .map_err(|e| unavailable("publish", &self.subject, e))?
            .await
            .map_err(|e| unavailable("publish ack", &self.subject, e))?;
        Ok(ack.sequence.to_string())
    }

    /// One-shot pull requests until a message comes or `opts.wait` ends;
    /// deliveries over the redrive count are moved to the dead-letter
    /// subject on the way.
    async fn receive(&self, opts: &ReceiveOptions) -> Result<Vec<QueueMessage>> {
        opts.validate()?;
        let vt = opts.visibility_timeout.unwrap_or(self.ack_wait);
        let now = Instant::now();
        self.lock().retain(|_, d| d.visible_until > now);
        let deadline = now + opts.wait;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let got = self.pull(opts.max_messages as usize, wait, vt).await?;
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            // Answered early with nothing (dead letters moved, or the
            // server's "requests pending"): ask again shortly.
            tokio::time::sleep(Duration::from_millis(20).min(wait)).await;
        }
    }

    /// `+ACK` of the current delivery; a stale handle succeeds and deletes
    /// nothing.
    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        let Some((sseq, d)) = self.take_current(receipt_handle)? else {
            return Ok(());
        };
        let reply = d.reply.clone();
        if let Err(e) = self.ack_request(&reply, AckKind::Ack).await {
            self.lock().entry(sseq).or_insert(d);
            return Err(e);
        }
        Ok(())
    }

    /// One `+ACK` request per handle, all under way at once (JetStream has
    /// no batch ack for explicit acks); results in the order given.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<()>> {
        join_all(receipt_handles.iter().map(|h| self.delete(h))).await
    }

    /// `+WPI` when `timeout` is the ack wait, `-NAK {"delay":…}` otherwise,
    /// `-NAK` for 0 (the handle is then stale).
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        check_visibility(timeout)?;
        let started = Instant::now();
        let Some((sseq, mut d)) = self.take_current(receipt_handle)? else {
            return Err(Error::MessageNotInflight {
                receipt_handle: receipt_handle.chars().take(200).collect(),
            });
        };
        let kind = if timeout.is_zero() {
            AckKind::Nak(None)
        } else if timeout == self.ack_wait {
            AckKind::Progress
        } else {
            AckKind::Nak(Some(timeout))
        };
        let reply = d.reply.clone();
        let sent = self.ack_request(&reply, kind).await;
        if sent.is_err() || !timeout.is_zero() {
            if sent.is_ok() {
                d.visible_until = started + timeout;
            }
            self.lock().entry(sseq).or_insert(d);
        }
        sent
    }
}

#[async_trait]
impl upload_core::EventSink for NatsQueue {
    async fn publish(&self, body: String) -> upload_core::Result<()> {
        self.send(body)
            .await
            .map(|_| ())
            .map_err(|e| upload_core::Error::Unavailable {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_refusals() {
        let ok = NatsQueueConfig::new("UPLOADS", "minio.uploads", "worker");
        assert!(ok.validate().is_ok());
        let cases = [
            (NatsQueueConfig::new("UP.LOADS", "s", "c"), "stream"),
            (NatsQueueConfig::new("S", "s", "c d"), "consumer"),
            (NatsQueueConfig::new("S", "a.*", "c"), "subject"),
            (NatsQueueConfig::new("S", "a..b", "c"), "subject"),
            (
                NatsQueueConfig::new("S", "s", "c").with_visibility_timeout(Duration::ZERO),
                "visibility_timeout",
            ),
            (
                NatsQueueConfig::new("S", "s", "c").with_message_retention(Duration::from_secs(59)),
                "message_retention",
            ),
            (
                NatsQueueConfig::new("S", "s", "c").with_redrive(0, "s.dlq"),
                "max_receive_count",
            ),
            (
                NatsQueueConfig::new("S", "s", "c").with_redrive(3, "s"),
                "dead_letter_subject",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(Error::InvalidQueueParameter { name, .. }) => assert_eq!(name, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
