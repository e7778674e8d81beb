//! [`QueueNotifier`]: notifications as JSON messages on a [`Queue`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{MAX_NOTIFICATION_BYTES, Notifier, NotifyError, UploadNotification};
use crate::queue::Queue;

/// Publishes each notification's JSON ([`UploadNotification::to_json`]) as
/// one message on a [`Queue`]: on `sqs::SqsQueue`
/// (feature `sqs`) this is the SQS notifier, on [`MemoryQueue`](crate::MemoryQueue)
/// an in-process outbox. Consumers parse each body with
/// [`UploadNotification::from_json`] and deduplicate by its
/// [`id`](UploadNotification::id). A standard SQS queue does not keep
/// order; [`MemoryQueue`](crate::MemoryQueue) does until a redelivery.
#[derive(Debug)]
pub struct QueueNotifier<Q: Queue> {
    queue: Arc<Q>,
}

/// Webhook notifications: a [`QueueNotifier`] into an outbox queue, so
/// [`Notifier::notify`] never waits on the HTTP receiver. A
/// `WebhookDeliverer` (feature `webhook`) drains the outbox. Use an
/// `sqs::SqsQueue` with a dead-letter queue for an
/// outbox that survives restarts, a [`MemoryQueue`](crate::MemoryQueue) in
/// process.
pub type WebhookNotifier<Q> = QueueNotifier<Q>;

impl<Q: Queue> Clone for QueueNotifier<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<Q: Queue> QueueNotifier<Q> {
    /// A notifier publishing onto `queue`.
    pub fn new(queue: Arc<Q>) -> Self {
        Self { queue }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<Q> {
        &self.queue
    }
}

#[async_trait]
impl<Q: Queue> Notifier for QueueNotifier<Q> {
    /// Sends the JSON; `Ok` once the queue accepted it.
    ///
    /// # Errors
    /// [`NotifyError::TooLarge`] over 256 KiB (the SQS body limit), before
    /// sending; [`NotifyError::Queue`] when the queue refuses or cannot be
    /// reached.
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError> {
        let json = n.to_json()?;
        if json.len() > MAX_NOTIFICATION_BYTES {
            return Err(NotifyError::TooLarge {
                bytes: json.len(),
                max: MAX_NOTIFICATION_BYTES,
            });
        }
        let message_id = self.queue.send(json).await?;
        tracing::debug!(id = %n.id(), kind = n.kind().as_str(), %message_id, "notification queued");
        Ok(())
    }
}
