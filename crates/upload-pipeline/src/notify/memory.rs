//! [`MemoryNotifier`] and [`ChannelNotifier`].

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{MAX_NOTIFICATION_BYTES, Notifier, NotifyError, UploadNotification};

#[derive(Debug, Default)]
struct MemoryState {
    accepted: Vec<UploadNotification>,
    fail_next: u32,
    calls: u64,
}

/// The in-memory twin of a queue-backed notifier, for tests: records
/// accepted notifications in call order, after a round trip through their
/// JSON (so what it records is what a receiver would parse), refuses JSON
/// over 256 KiB as a queue does, and can be told to fail the next `n`
/// calls.
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    state: Mutex<MemoryState>,
}

impl MemoryNotifier {
    /// An empty notifier that accepts everything up to 256 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` calls of [`Notifier::notify`] fail with
    /// [`NotifyError::Unavailable`] (replacing any count still pending).
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// The accepted notifications, in the order they were accepted.
    pub fn notifications(&self) -> Vec<UploadNotification> {
        self.lock().accepted.clone()
    }

    /// The [`id`](UploadNotification::id)s of the accepted notifications,
    /// in order.
    pub fn ids(&self) -> Vec<String> {
        self.lock()
            .accepted
            .iter()
            .map(UploadNotification::id)
            .collect()
    }

    /// Removes and returns the accepted notifications, in order.
    pub fn take(&self) -> Vec<UploadNotification> {
        std::mem::take(&mut self.lock().accepted)
    }

    /// Calls of [`Notifier::notify`] so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    /// # Errors
    /// [`NotifyError::Unavailable`] while told to fail;
    /// [`NotifyError::TooLarge`] over 256 KiB of JSON.
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError> {
        let json = n.to_json()?;
        let mut st = self.lock();
        st.calls += 1;
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return Err(NotifyError::Unavailable {
                reason: "MemoryNotifier told to fail".into(),
            });
        }
        if json.len() > MAX_NOTIFICATION_BYTES {
            return Err(NotifyError::TooLarge {
                bytes: json.len(),
                max: MAX_NOTIFICATION_BYTES,
            });
        }
        st.accepted.push(UploadNotification::from_json(&json)?);
        Ok(())
    }
}

/// Hands notifications to the application in the same process through a
/// bounded `tokio::sync::mpsc` channel, in order.
///
/// Not durable: notifications still in the channel when the process stops
/// are lost (their S3 events were already deleted). Use a
/// [`QueueNotifier`](super::QueueNotifier) when that matters.
#[derive(Debug, Clone)]
pub struct ChannelNotifier {
    tx: mpsc::Sender<UploadNotification>,
}

impl ChannelNotifier {
    /// A notifier and its receiver, holding up to `capacity` notifications
    /// (at least 1) before [`Notifier::notify`] waits for room.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<UploadNotification>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }
}

#[async_trait]
impl Notifier for ChannelNotifier {
    /// Waits for room in the channel (backpressure), then sends.
    ///
    /// # Errors
    /// [`NotifyError::Closed`] once the receiver is dropped.
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError> {
        self.tx
            .send(n.clone())
            .await
            .map_err(|_| NotifyError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::UploadContext;
    use upload_core::ObjectKey;

    fn removed(key: &str) -> UploadNotification {
        UploadNotification::removed(
            "b",
            ObjectKey::new(key).unwrap(),
            None,
            UploadContext::default(),
        )
    }

    #[tokio::test]
    async fn memory_notifier_fails_the_next_n_calls_then_records() {
        let m = MemoryNotifier::new();
        m.fail_next(2);
        for _ in 0..2 {
            let err = m.notify(&removed("uploads/a")).await.unwrap_err();
            assert!(matches!(err, NotifyError::Unavailable { .. }), "{err:?}");
        }
        m.notify(&removed("uploads/a")).await.unwrap();
        assert_eq!(m.calls(), 3);
        assert_eq!(m.ids(), [removed("uploads/a").id()]);
        assert_eq!(m.take().len(), 1);
        assert!(m.notifications().is_empty());
    }

    #[tokio::test]
    async fn channel_notifier_reports_a_closed_receiver() {
        let (n, mut rx) = ChannelNotifier::new(4);
        n.notify(&removed("uploads/a")).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), removed("uploads/a"));
        drop(rx);
        let err = n.notify(&removed("uploads/b")).await.unwrap_err();
        assert!(matches!(err, NotifyError::Closed), "{err:?}");
    }
}
