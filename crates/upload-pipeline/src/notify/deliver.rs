//! [`WebhookDeliverer`]: drains a webhook outbox queue with signed HTTP
//! POSTs (feature `webhook`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use super::{NotifyError, UploadNotification, WebhookSigner};
use crate::queue::{
    MAX_RECEIVE_BATCH, MAX_VISIBILITY_TIMEOUT, Queue, QueueMessage, ReceiveOptions,
};

/// Exponential backoff with jitter between delivery attempts, by the
/// message's receive count `n` (1 for the first attempt): the ceiling is
/// `min(max, base × 2^(n-1))`, and the delay is drawn uniformly from
/// `[ceiling / 2, ceiling]` ("equal jitter": never shorter than half).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling after the first failed attempt.
    pub base: Duration,
    /// Largest ceiling (at most 12 h, the SQS visibility limit).
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 s doubling up to 15 minutes.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl Backoff {
    /// A backoff of `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The ceiling after the `receive_count`-th attempt failed:
    /// `min(max, base × 2^(receive_count - 1))` (a count of 0 counts as 1).
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay after the `receive_count`-th attempt for a jitter draw
    /// `unit` in `[0, 1]` (clamped): `ceiling × (1 + unit) / 2`.
    pub fn delay_with(&self, receive_count: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(receive_count);
        ceiling.mul_f64((1.0 + unit.clamp(0.0, 1.0)) / 2.0)
    }

    /// The delay after the `receive_count`-th attempt, with a random draw.
    pub fn delay(&self, receive_count: u32) -> Duration {
        let r = RandomState::new().hash_one((receive_count, std::time::Instant::now()));
        self.delay_with(receive_count, (r >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Settings of a [`WebhookDeliverer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// The receiver's URL (`http://`; `https://` needs feature
    /// `webhook-rustls`).
    pub endpoint: String,
    /// Deliveries at once, 1..=10 (one receive batch). Default 8.
    pub concurrency: usize,
    /// Limit of one request, connecting included; a request that takes
    /// longer counts as failed. Default 10 s.
    pub request_timeout: Duration,
    /// Delay before a failed delivery is tried again.
    pub backoff: Backoff,
    /// Long-poll wait of each receive, 0..=20 s. Default 20 s.
    pub wait: Duration,
    /// Visibility timeout of received messages: must exceed
    /// `request_timeout`, so a message is not delivered twice at once.
    /// Default 60 s.
    pub visibility_timeout: Duration,
}

impl DeliveryConfig {
    /// Defaults for `endpoint`: 8 at once, 10 s timeout, 5 s..15 min
    /// backoff, 20 s long poll, 60 s visibility.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            concurrency: 8,
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            wait: Duration::from_secs(20),
            visibility_timeout: Duration::from_secs(60),
        }
    }
    /// Sets [`concurrency`](Self::concurrency).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
    /// Sets [`backoff`](Self::backoff).
    pub fn with_backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }
    /// Sets [`wait`](Self::wait).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
    /// Sets [`visibility_timeout`](Self::visibility_timeout).
    pub fn with_visibility_timeout(mut self, t: Duration) -> Self {
        self.visibility_timeout = t;
        self
    }

    fn validate(&self) -> Result<(), NotifyError> {
        let bad = |name, reason: String| Err(NotifyError::InvalidConfig { name, reason });
        if !(1..=MAX_RECEIVE_BATCH as usize).contains(&self.concurrency) {
            return bad(
                "concurrency",
                format!("{} is outside 1..=10", self.concurrency),
            );
        }
        if self.visibility_timeout <= self.request_timeout
            || self.visibility_timeout > MAX_VISIBILITY_TIMEOUT
        {
            return bad(
                "visibility_timeout",
                format!(
                    "{:?} must exceed the request timeout {:?} and be at most 12 h",
                    self.visibility_timeout, self.request_timeout
                ),
            );
        }
        if self.backoff.max > MAX_VISIBILITY_TIMEOUT || self.backoff.base > self.backoff.max {
            return bad(
                "backoff",
                format!(
                    "{:?}: base must be at most max, max at most 12 h",
                    self.backoff
                ),
            );
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return bad(
                "endpoint",
                format!("{:?} is not an http(s) URL", self.endpoint),
            );
        }
        Ok(())
    }
}

/// Counts of one or more delivery rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Answered 2xx and deleted from the outbox.
    pub delivered: u64,
    /// Failed (error status, timeout, connection refused) and left on the
    /// outbox with a backoff.
    pub retried: u64,
    /// Outbox messages that are not notifications: left on the outbox with
    /// the longest backoff, for its dead-letter queue.
    pub malformed: u64,
}

impl DeliveryStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DeliveryStats) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.malformed += other.malformed;
    }
}

enum Attempt {
    Delivered,
    Retried,
    Malformed,
}

/// Drains a webhook outbox (the queue of a
/// [`WebhookNotifier`](super::WebhookNotifier)): POSTs each notification
/// JSON, unchanged, to the endpoint with the Standard Webhooks headers
/// (`webhook-id` = [`UploadNotification::id`], `webhook-timestamp` = the
/// attempt's time, `webhook-signature`), signed anew at every attempt.
///
/// - A 2xx answer deletes the message.
/// - Anything else (an error status, a timeout, a refused connection)
///   leaves it on the outbox and sets its visibility to the
///   [`Backoff`] of its receive count, so it is tried again later with the
///   same `webhook-id`.
/// - The outbox's redrive policy ends the retries: after its maximum
///   receives the queue itself moves the message to its dead-letter queue
///   ([`MemoryQueue::with_dead_letter_queue`](crate::MemoryQueue::with_dead_letter_queue),
///   an SQS redrive policy). An outbox without one retries forever.
///
/// A receiver must therefore deduplicate by `webhook-id`.
#[derive(Debug)]
pub struct WebhookDeliverer<Q: Queue> {
    outbox: Arc<Q>,
    signer: WebhookSigner,
    config: DeliveryConfig,
    client: reqwest::Client,
}

impl<Q: Queue> WebhookDeliverer<Q> {
    /// A deliverer of `outbox` to `config.endpoint`, signing with `signer`.
    ///
    /// # Errors
    /// [`NotifyError::InvalidConfig`] for settings out of range (see
    /// [`DeliveryConfig`]) or an HTTP client that cannot be built.
    pub fn new(
        outbox: Arc<Q>,
        signer: WebhookSigner,
        config: DeliveryConfig,
    ) -> Result<Self, NotifyError> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("upload-sdk-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::InvalidConfig {
                name: "endpoint",
                reason: e.to_string(),
            })?;
        Ok(Self {
            outbox,
            signer,
            config,
            client,
        })
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Q> {
        &self.outbox
    }

    fn receive_options(&self) -> ReceiveOptions {
        ReceiveOptions::default()
            .with_max_messages(self.config.concurrency as u32)
            .with_wait(self.config.wait)
            .with_visibility_timeout(self.config.visibility_timeout)
    }

    /// One round: receives up to `concurrency` messages (waiting up to
    /// `wait` for one) and delivers them concurrently; returns when each is
    /// deleted or rescheduled.
    ///
    /// # Errors
    /// [`NotifyError::Queue`] when the outbox cannot be read (failed
    /// deletes and visibility changes are logged, not returned: the message
    /// then comes back after its visibility timeout).
    pub async fn deliver_once(&self) -> Result<DeliveryStats, NotifyError> {
        let messages = self.outbox.receive(&self.receive_options()).await?;
        Ok(self.deliver_batch(messages).await)
    }

    async fn deliver_batch(&self, messages: Vec<QueueMessage>) -> DeliveryStats {
        let mut stats = DeliveryStats::default();
        let mut attempts = futures::stream::iter(messages)
            .map(|m| self.deliver(m))
            .buffer_unordered(self.config.concurrency);
        while let Some(a) = attempts.next().await {
            let outcome = match a {
                Attempt::Delivered => "delivered",
                Attempt::Retried => "retried",
                Attempt::Malformed => "malformed",
            };
            ::metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "outcome" => outcome)
                .increment(1);
            match a {
                Attempt::Delivered => stats.delivered += 1,
                Attempt::Retried => stats.retried += 1,
                Attempt::Malformed => stats.malformed += 1,
            }
        }
        stats
    }

    async fn deliver(&self, m: QueueMessage) -> Attempt {
        let id = match UploadNotification::from_json(&m.body) {
            Ok(n) => n.id(),
            Err(e) => {
                tracing::error!(message_id = %m.message_id, error = %e, "outbox message is not a notification; left for the dead-letter queue");
                self.reschedule(&m, self.config.backoff.max).await;
                return Attempt::Malformed;
            }
        };
        let h = self.signer.headers_now(&id, m.body.as_bytes());
        let sent = self
            .client
            .post(&self.config.endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(super::HEADER_ID, &h.id)
            .header(super::HEADER_TIMESTAMP, h.timestamp.to_string())
            .header(super::HEADER_SIGNATURE, &h.signature)
            .body(m.body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
            Err(e) if e.is_timeout() => Some(format!("timed out: {e}")),
            Err(e) => Some(format!("request failed: {e}")),
        };
        match failure {
            None => {
                if let Err(e) = self.outbox.delete(&m.receipt_handle).await {
                    tracing::warn!(%id, error = %e, "delivered but not deleted from the outbox; it will be delivered again");
                }
                tracing::debug!(%id, attempt = m.receive_count, "webhook delivered");
                Attempt::Delivered
            }
            Some(why) => {
                let delay = self.config.backoff.delay(m.receive_count);
                tracing::warn!(%id, attempt = m.receive_count, retry_in = ?delay, reason = %why, "webhook delivery failed");
                self.reschedule(&m, delay).await;
                Attempt::Retried
            }
        }
    }

    async fn reschedule(&self, m: &QueueMessage, delay: Duration) {
        if let Err(e) = self
            .outbox
            .change_visibility(&m.receipt_handle, delay)
            .await
        {
            tracing::warn!(message_id = %m.message_id, error = %e, "could not set the retry delay; the visibility timeout applies");
        }
    }

    /// Delivers until `shutdown` is cancelled, then returns the totals.
    /// Stopping is graceful: a long poll in progress is abandoned (messages
    /// a queue handed out meanwhile come back after their visibility
    /// timeout), deliveries in progress finish. Outbox read errors are
    /// logged and retried with the backoff.
    pub async fn run(&self, shutdown: CancellationToken) -> DeliveryStats {
        let mut total = DeliveryStats::default();
        let mut failures = 0u32;
        let opts = self.receive_options();
        loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                r = self.outbox.receive(&opts) => r,
            };
            match received {
                Ok(messages) => {
                    failures = 0;
                    total.add(&self.deliver_batch(messages).await);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = self.config.backoff.delay(failures);
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot read the webhook outbox");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!(?total, "webhook deliverer stopped");
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.ceiling(0), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
        assert_eq!(b.delay_with(3, 0.0), Duration::from_secs(10));
        assert_eq!(b.delay_with(3, 1.0), Duration::from_secs(20));
        assert_eq!(b.delay_with(3, 0.5), Duration::from_secs(15));
        assert_eq!(b.delay_with(3, 7.0), Duration::from_secs(20), "clamped");
        for n in 1..=8 {
            let d = b.delay(n);
            assert!(d >= b.ceiling(n) / 2 && d <= b.ceiling(n), "{n}: {d:?}");
        }
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let q = Arc::new(crate::MemoryQueue::new("outbox"));
        let signer = WebhookSigner::new(super::super::WebhookSecret::generate());
        let base = DeliveryConfig::new("http://127.0.0.1:9/hook");
        for (cfg, name) in [
            (base.clone().with_concurrency(0), "concurrency"),
            (base.clone().with_concurrency(11), "concurrency"),
            (
                base.clone()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_visibility_timeout(Duration::from_secs(60)),
                "visibility_timeout",
            ),
            (
                base.clone().with_backoff(Backoff::new(
                    Duration::from_secs(10),
                    Duration::from_secs(1),
                )),
                "backoff",
            ),
            (DeliveryConfig::new("ftp://x"), "endpoint"),
        ] {
            let err = WebhookDeliverer::new(q.clone(), signer.clone(), cfg).unwrap_err();
            assert!(
                matches!(err, NotifyError::InvalidConfig { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
        }
        assert!(WebhookDeliverer::new(q, signer, base).is_ok());
    }
}
