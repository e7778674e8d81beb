//! Shared fixtures of the worker tests: in-memory buckets and queue, the
//! standard codec, and a scanner of the test's choosing.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use upload_core::{Bytes, MemoryStorage, ObjectKey, PutOptions, Storage};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::{Manifest, MemoryQueue, StandardCodec, Worker, WorkerConfig};
use upload_scan::{Quarantine, Scanner};

pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples");

pub fn sample(path: &str) -> Bytes {
    std::fs::read(format!("{SAMPLES}/{path}")).unwrap().into()
}

pub struct World {
    pub queue: Arc<MemoryQueue>,
    pub dlq: Arc<MemoryQueue>,
    pub uploads: Arc<MemoryStorage>,
    pub processed: Arc<MemoryStorage>,
    pub quarantine: Arc<MemoryStorage>,
    pub worker: Worker,
}

/// Uploads publish events into a queue with a 30 s visibility timeout and
/// a dead-letter queue after 3 receives.
pub fn world(scanner: Arc<dyn Scanner>) -> World {
    let policy = upload_core::UploadPolicy::images_and_pdf(64 << 20).unwrap();
    world_with(scanner, WorkerConfig::new(policy))
}

/// [`world`] with the worker configured by `config`.
pub fn world_with(scanner: Arc<dyn Scanner>, config: WorkerConfig) -> World {
    let dlq = Arc::new(MemoryQueue::new("dlq"));
    let queue = Arc::new(
        MemoryQueue::new("events")
            .with_visibility_timeout(Duration::from_secs(30))
            .unwrap()
            .with_dead_letter_queue(3, dlq.clone())
            .unwrap(),
    );
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(queue.clone()),
    );
    let processed = Arc::new(MemoryStorage::new("processed").unwrap());
    let quarantine = Arc::new(MemoryStorage::new("quarantine").unwrap());
    let worker = Worker::new(
        queue.clone(),
        uploads.clone(),
        processed.clone(),
        scanner,
        Arc::new(StandardCodec::default()),
        Quarantine::new(quarantine.clone(), "quarantine/"),
        config,
    );
    World {
        queue,
        dlq,
        uploads,
        processed,
        quarantine,
        worker,
    }
}

impl World {
    pub async fn upload(&self, key: &str, body: Bytes, ct: &str) -> ObjectKey {
        let k = ObjectKey::new(key).unwrap();
        self.uploads
            .put(
                &k,
                body,
                PutOptions::default()
                    .with_content_type(ct)
                    .with_create_only(true),
            )
            .await
            .unwrap();
        k
    }

    pub async fn manifest(&self, k: &ObjectKey) -> Manifest {
        let got = self.processed.get(&manifest_key(k).unwrap()).await.unwrap();
        assert_eq!(got.meta.content_type.as_deref(), Some("application/json"));
        serde_json::from_slice(&got.body).unwrap()
    }
}
