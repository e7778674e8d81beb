//! The [`Queue`] trait and [`MemoryQueue`], an in-memory queue with SQS
//! semantics.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;
use upload_core::EventSink;

use crate::error::{Error, Result};

/// Largest message body: 256 KiB (SQS).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most messages per receive: 10 (SQS `MaxNumberOfMessages`).
pub const MAX_RECEIVE_BATCH: u32 = 10;
/// Longest long-poll wait: 20 s (SQS `WaitTimeSeconds`).
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Longest visibility timeout: 12 hours (SQS).
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// Default visibility timeout: 30 s (SQS).
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The message ID, stable across deliveries.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// The handle of this delivery: needed to delete the message or change
    /// its visibility; a new one is issued at every delivery.
    pub receipt_handle: String,
    /// How many times the message has been received, this time included
    /// (SQS `ApproximateReceiveCount`).
    pub receive_count: u32,
}

/// Options of [`Queue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveOptions {
    /// Most messages to return, 1..=10.
    pub max_messages: u32,
    /// Long-poll wait when no message is visible, 0..=20 s.
    pub wait: Duration,
    /// Visibility timeout of the received messages, 0..=12 h; `None` uses the
    /// queue's default.
    pub visibility_timeout: Option<Duration>,
}

impl Default for ReceiveOptions {
    /// 10 messages, 20 s long poll, the queue's visibility timeout.
    fn default() -> Self {
        Self {
            max_messages: MAX_RECEIVE_BATCH,
            wait: MAX_WAIT,
            visibility_timeout: None,
        }
    }
}

impl ReceiveOptions {
    /// Sets the batch size (1..=10).
    pub fn with_max_messages(mut self, n: u32) -> Self {
        self.max_messages = n;
        self
    }
    /// Sets the long-poll wait (0..=20 s).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
    /// Sets the visibility timeout (0..=12 h).
    pub fn with_visibility_timeout(mut self, t: Duration) -> Self {
        self.visibility_timeout = Some(t);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=MAX_RECEIVE_BATCH).contains(&self.max_messages) {
            return Err(Error::InvalidQueueParameter {
                name: "max_messages",
                reason: format!("{} is outside 1..=10", self.max_messages),
            });
        }
        if self.wait > MAX_WAIT {
            return Err(Error::InvalidQueueParameter {
                name: "wait",
                reason: format!("{:?} is over 20 s", self.wait),
            });
        }
        if let Some(t) = self.visibility_timeout {
            check_visibility(t)?;
        }
        Ok(())
    }
}

/// SQS accepts only these characters in a message body: #x9, #xA, #xD,
/// #x20..=#xD7FF, #xE000..=#xFFFD, #x10000..=#x10FFFF (SQS SendMessage
/// docs). Rust strings hold no surrogates, so only control characters and
/// U+FFFE/U+FFFF need refusing.
pub(crate) fn check_body(body: &str) -> Result<()> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(Error::MessageTooLong {
            bytes: body.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    if let Some(c) = body.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    }) {
        return Err(Error::InvalidQueueParameter {
            name: "body",
            reason: format!(
                "character U+{:04X} is not allowed in an SQS message",
                c as u32
            ),
        });
    }
    Ok(())
}

/// The redrive policy's `maxReceiveCount` range SQS accepts: 1..=1000.
pub(crate) fn check_max_receive_count(n: u32) -> Result<()> {
    if !(1..=1000).contains(&n) {
        return Err(Error::InvalidQueueParameter {
            name: "max_receive_count",
            reason: format!("{n} is outside 1..=1000"),
        });
    }
    Ok(())
}

pub(crate) fn check_visibility(t: Duration) -> Result<()> {
    if t > MAX_VISIBILITY_TIMEOUT {
        return Err(Error::InvalidQueueParameter {
            name: "visibility_timeout",
            reason: format!("{t:?} is over 12 h"),
        });
    }
    Ok(())
}

/// A message queue with SQS's at-least-once semantics.
///
/// Every implementation passes `testkit::queue::run_all` (feature
/// `testkit`).
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Sends a message; returns its message ID.
    ///
    /// # Errors
    /// [`Error::MessageTooLong`] over 256 KiB; [`Error::QueueUnavailable`].
    async fn send(&self, body: String) -> Result<String>;

    /// Receives up to `opts.max_messages` visible messages, waiting up to
    /// `opts.wait` for one to become visible. Received messages are hidden
    /// for the visibility timeout, then delivered again unless deleted.
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`]; [`Error::QueueUnavailable`].
    async fn receive(&self, opts: &ReceiveOptions) -> Result<Vec<QueueMessage>>;

    /// Deletes the message of `receipt_handle`. As in SQS, a handle from an
    /// earlier delivery succeeds without deleting the message.
    ///
    /// # Errors
    /// [`Error::ReceiptHandleIsInvalid`] for a handle this queue never
    /// issued; [`Error::QueueUnavailable`].
    async fn delete(&self, receipt_handle: &str) -> Result<()>;

    /// Deletes several messages, as SQS `DeleteMessageBatch` (10 per
    /// request; longer lists are sent in batches of 10). Returns one result
    /// per handle, in the order given; a batch that could not be sent
    /// fails each of its entries with [`Error::QueueUnavailable`].
    ///
    /// The default implementation calls [`Queue::delete`] per handle.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(receipt_handles.len());
        for h in receipt_handles {
            out.push(self.delete(h).await);
        }
        out
    }

    /// Sets the remaining visibility timeout of an in-flight message (0
    /// makes it visible at once: a quick retry).
    ///
    /// # Errors
    /// [`Error::MessageNotInflight`] for a stale handle;
    /// [`Error::ReceiptHandleIsInvalid`]; [`Error::InvalidQueueParameter`]
    /// over 12 h; [`Error::QueueUnavailable`].
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()>;
}

#[derive(Debug)]
struct Stored {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Instant,
    /// The handle of the current delivery, while received and not yet
    /// deleted.
    receipt: Option<String>,
}

/// Messages by sequence number, ordered for delivery by when they become
/// visible: every operation is O(log n), so a queue of millions of
/// messages stays fast (benchmarks measure the worker, not the queue).
#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    messages: HashMap<u64, Stored>,
    /// `(visible_at, seq)` of every message: the visible ones first, in
    /// send order among equals.
    by_visibility: BTreeSet<(Instant, u64)>,
    next_delivery: u64,
}

impl State {
    fn set_visible_at(&mut self, seq: u64, at: Instant) {
        if let Some(m) = self.messages.get_mut(&seq) {
            self.by_visibility.remove(&(m.visible_at, seq));
            m.visible_at = at;
            self.by_visibility.insert((at, seq));
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Stored> {
        let m = self.messages.remove(&seq)?;
        self.by_visibility.remove(&(m.visible_at, seq));
        Some(m)
    }
}

/// An in-memory [`Queue`] that behaves like a standard SQS queue:
/// visibility timeouts, a new receipt handle per delivery, redelivery after
/// the timeout, long polling, and a dead-letter queue after
/// `max_receive_count` deliveries (the redrive policy). Time is
/// `tokio::time`, so tests can pause and advance it. Each operation is
/// O(log n) in the number of messages.
#[derive(Debug)]
pub struct MemoryQueue {
    name: String,
    state: Mutex<State>,
    notify: Notify,
    visibility_timeout: Duration,
    redrive: Option<(u32, Arc<MemoryQueue>)>,
    /// Keys the tag that makes receipt handles unforgeable.
    handle_key: RandomState,
}

impl MemoryQueue {
    /// An empty queue with the 30 s default visibility timeout and no
    /// dead-letter queue.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            redrive: None,
            handle_key: RandomState::new(),
        }
    }

    /// Sets the default visibility timeout.
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] over 12 h.
    pub fn with_visibility_timeout(mut self, t: Duration) -> Result<Self> {
        check_visibility(t)?;
        self.visibility_timeout = t;
        Ok(self)
    }

    /// Moves a message to `dlq` instead of delivering it a
    /// `max_receive_count + 1`-th time (SQS redrive policy).
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] unless `max_receive_count` is
    /// 1..=1000.
    pub fn with_dead_letter_queue(
        mut self,
        max_receive_count: u32,
        dlq: Arc<MemoryQueue>,
    ) -> Result<Self> {
        check_max_receive_count(max_receive_count)?;
        self.redrive = Some((max_receive_count, dlq));
        Ok(self)
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Messages stored (visible or in flight) (SQS
    /// `ApproximateNumberOfMessages` + `...NotVisible`).
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    /// Whether no message is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages received and not yet deleted or visible again.
    pub fn in_flight(&self) -> usize {
        let now = Instant::now();
        let st = self.lock();
        st.by_visibility.range((now, u64::MAX)..).count()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, id: String, body: String) {
        let now = Instant::now();
        {
            let mut st = self.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            st.messages.insert(
                seq,
                Stored {
                    id,
                    body,
                    receive_count: 0,
                    visible_at: now,
                    receipt: None,
                },
            );
            st.by_visibility.insert((now, seq));
        }
        self.notify.notify_waiters();
    }

    /// Takes what is visible now; returns the messages and the next instant
    /// at which one becomes visible.
    fn take_visible(&self, max: usize, vt: Duration) -> (Vec<QueueMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut to_dlq = Vec::new();
        let mut st = self.lock();
        // A zero visibility timeout puts a delivered message back among the
        // visible ones: never deliver one twice in one receive (SQS does
        // not).
        let mut delivered = HashSet::new();
        let mut cursor: Option<(Instant, u64)> = None;
        while out.len() < max {
            let next = match cursor {
                None => st.by_visibility.first().copied(),
                Some(c) => st
                    .by_visibility
                    .range((Bound::Excluded(c), Bound::Unbounded))
                    .next()
                    .copied(),
            };
            let Some((at, seq)) = next else {
                break;
            };
            if at > now {
                break;
            }
            cursor = Some((at, seq));
            if !delivered.insert(seq) {
                continue;
            }
            let over_limit = match (&self.redrive, st.messages.get(&seq)) {
                (Some((max_rc, _)), Some(m)) => m.receive_count >= *max_rc,
                _ => false,
            };
            if over_limit {
                to_dlq.extend(st.remove(seq));
                continue;
            }
            let delivery = st.next_delivery;
            st.next_delivery += 1;
            st.set_visible_at(seq, now + vt);
            let m = st.messages.get_mut(&seq).expect("indexed messages exist");
            m.receive_count += 1;
            let tag = self.handle_key.hash_one((seq, delivery));
            let handle = format!("{}:{seq:x}:{delivery:x}:{tag:016x}", m.id);
            m.receipt = Some(handle.clone());
            out.push(QueueMessage {
                message_id: m.id.clone(),
                body: m.body.clone(),
                receipt_handle: handle.clone(),
                receive_count: m.receive_count,
            });
        }
        let next = st.by_visibility.first().map(|&(at, _)| at);
        drop(st);
        if let Some((_, dlq)) = &self.redrive {
            for m in to_dlq {
                tracing::warn!(queue = %self.name, dlq = %dlq.name, message_id = %m.id, receives = m.receive_count, "moved to the dead-letter queue");
                dlq.push(m.id, m.body);
            }
        }
        (out, next.filter(|t| *t > now))
    }

    /// The sequence number in `handle` if this queue issued it:
    /// `{message id}:{seq}:{delivery}:{tag}`, all hex, the tag keyed by
    /// this queue.
    fn issued_seq(&self, handle: &str) -> Option<u64> {
        let mut parts = handle.rsplitn(4, ':');
        let tag = u64::from_str_radix(parts.next()?, 16).ok()?;
        let delivery = u64::from_str_radix(parts.next()?, 16).ok()?;
        let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
        parts.next()?;
        (self.handle_key.hash_one((seq, delivery)) == tag).then_some(seq)
    }

    /// The sequence number of the message whose current delivery is
    /// `handle`: `Ok(None)` for a handle of an earlier delivery or of a
    /// deleted message.
    fn find_current(&self, st: &State, handle: &str) -> Result<Option<u64>> {
        let Some(seq) = self.issued_seq(handle) else {
            return Err(Error::ReceiptHandleIsInvalid {
                receipt_handle: handle.chars().take(200).collect(),
            });
        };
        Ok(st
            .messages
            .get(&seq)
            .filter(|m| m.receipt.as_deref() == Some(handle))
            .map(|_| seq))
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, body: String) -> Result<String> {
        check_body(&body)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.push(id.clone(), body);
        Ok(id)
    }

    async fn receive(&self, opts: &ReceiveOptions) -> Result<Vec<QueueMessage>> {
        opts.validate()?;
        let vt = opts.visibility_timeout.unwrap_or(self.visibility_timeout);
        let deadline = Instant::now() + opts.wait;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next) = self.take_visible(opts.max_messages as usize, vt);
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            let wake = next.map_or(deadline, |n| n.min(deadline));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        let mut st = self.lock();
        if let Some(seq) = self.find_current(&st, receipt_handle)? {
            st.remove(seq);
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        check_visibility(timeout)?;
        let now = Instant::now();
        {
            let mut st = self.lock();
            let seq = self
                .find_current(&st, receipt_handle)?
                .filter(|seq| st.messages[seq].visible_at > now)
                .ok_or_else(|| Error::MessageNotInflight {
                    receipt_handle: receipt_handle.chars().take(200).collect(),
                })?;
            st.set_visible_at(seq, now + timeout);
        }
        self.notify.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl EventSink for MemoryQueue {
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

    #[tokio::test]
    async fn zero_visibility_never_delivers_a_message_twice_in_one_receive() {
        let dlq = Arc::new(MemoryQueue::new("dlq"));
        let q = MemoryQueue::new("q")
            .with_dead_letter_queue(2, dlq.clone())
            .unwrap();
        q.send("a".into()).await.unwrap();
        q.send("b".into()).await.unwrap();
        let opts = ReceiveOptions::default()
            .with_wait(Duration::ZERO)
            .with_visibility_timeout(Duration::ZERO);
        let got = q.receive(&opts).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["a", "b"]);
        assert!(got.iter().all(|m| m.receive_count == 1));
        // Visible again at once: the second receive is the second delivery.
        let again = q.receive(&opts).await.unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|m| m.receive_count == 2));
        assert!(dlq.is_empty(), "two deliveries, within the redrive count");
        assert!(q.receive(&opts).await.unwrap().is_empty());
        assert_eq!(dlq.len(), 2, "then dead-lettered");
    }

    #[tokio::test]
    async fn forged_and_foreign_handles_are_invalid() {
        let q = MemoryQueue::new("q");
        let other = MemoryQueue::new("other");
        other.send("x".into()).await.unwrap();
        let foreign = other
            .receive(&ReceiveOptions::default().with_wait(Duration::ZERO))
            .await
            .unwrap()
            .remove(0)
            .receipt_handle;
        for h in [foreign.as_str(), "id:0:0:0000000000000000", "", "a:b:c:d:e"] {
            assert!(
                matches!(q.delete(h).await, Err(Error::ReceiptHandleIsInvalid { .. })),
                "{h}"
            );
        }
    }
}
