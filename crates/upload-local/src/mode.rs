//! [`LocalMode`]: the whole architecture on one machine, running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use upload_core::{MultipartStore, UploadPolicy};
use upload_object_store::ObjectStoreStorage;
use upload_pipeline::service::{WorkerHandle, spawn_worker};
use upload_pipeline::{
    DiskQueue, Health, RouteProcessing, RunStats, StandardCodec, Worker, WorkerConfig,
};
use upload_presign::{LocalEndpoint, Presigner, RunningEndpoint, ServerTimeouts, Url, Verifier};
use upload_scan::Quarantine;
use upload_server::{AppState, DEFAULT_ROUTE, ServerConfig};

use crate::config::LocalConfig;
use crate::error::LocalError;
use crate::events::EventPublishingStorage;
use crate::reconcile::{ReconcileReport, reconcile};
use crate::scanner::{ScannerChoice, choose_scanner};
use crate::secrets::Secrets;

/// Bucket clients upload into.
pub const UPLOADS_BUCKET: &str = "uploads";
/// Bucket of variants and manifests.
pub const PROCESSED_BUCKET: &str = "processed";
/// Bucket infected and unscannable originals are moved into (same key).
pub const QUARANTINE_BUCKET: &str = "quarantine";
/// Folder of the buckets under the data directory: `DATA/buckets/{name}`.
pub const BUCKETS_DIR: &str = "buckets";
/// The queue file under the data directory.
pub const QUEUE_FILE: &str = "queue.redb";
/// Name of the event queue in [`QUEUE_FILE`].
pub const QUEUE_NAME: &str = "upload-events";
/// Name of its dead-letter queue, in the same file.
pub const DEAD_LETTER_QUEUE_NAME: &str = "upload-events-dlq";

const MIB: u64 = 1024 * 1024;

/// The uploads bucket as the endpoint and the API write it: every
/// completed write sends its ObjectCreated event to the queue.
pub type PublishingUploads = EventPublishingStorage<ObjectStoreStorage>;

/// The local mode, running: the three buckets on local disk, the durable
/// queue, the worker (unless [`LocalConfig::run_worker`] is off), the
/// local upload endpoint and the upload API, on 127.0.0.1.
///
/// What `DATA` (the data directory) holds, and so what survives a
/// restart (or a `kill -9`):
///
/// | path | what |
/// |---|---|
/// | `DATA/buckets/uploads/`, `processed/`, `quarantine/` | one file per object; tags, ETags and metadata in `.upload-sdk/meta/`, multipart parts in `.upload-sdk/multipart/{upload ID}/` ([`ObjectStoreStorage::local`]) |
/// | `DATA/queue.redb` | the event queue and its dead-letter queue ([`DiskQueue`]: visibility timeout, receive count, redrive) |
/// | `DATA/secrets.json` | the SigV4 credentials and the API's session secret (mode 0600, [`Secrets`]) |
///
/// So after a restart on the same `DATA`: presigned URLs and multipart
/// session tokens issued before stay valid (same keys; the same endpoint
/// address is needed for URLs), an open multipart upload goes on with its
/// upload ID (ListParts shows the parts stored before), pending events
/// are delivered again once their visibility timeout has passed, and an
/// original whose event was never sent gets one from the start-up
/// [`reconcile()`].
///
/// Dropping it stops the servers and the worker less gracefully than
/// [`LocalMode::shutdown`].
#[derive(Debug)]
pub struct LocalMode {
    data_dir: PathBuf,
    api_addr: SocketAddr,
    api_stop: Option<oneshot::Sender<()>>,
    api_task: tokio::task::JoinHandle<std::io::Result<()>>,
    endpoint: Option<RunningEndpoint>,
    endpoint_url: Url,
    worker: Option<WorkerHandle>,
    queue: DiskQueue,
    dead_letter_queue: DiskQueue,
    uploads: Arc<ObjectStoreStorage>,
    publishing_uploads: Arc<PublishingUploads>,
    processed: Arc<ObjectStoreStorage>,
    quarantine: Arc<ObjectStoreStorage>,
    presigner: Arc<Presigner>,
    scanner: ScannerChoice,
    reconciled: ReconcileReport,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_owned(),
        source,
    }
}

impl LocalMode {
    /// Opens (creating what is missing) the data directory `data_dir` and
    /// starts everything: reconciliation first, then the servers and the
    /// worker. Must run inside a multi-threaded tokio runtime.
    ///
    /// # Errors
    /// [`LocalError::Io`] when the data directory cannot be created or
    /// read; [`LocalError::CorruptSecrets`]; [`LocalError::Queue`] when
    /// the queue file is locked by another process on the same `DATA` or
    /// damaged; [`LocalError::Bind`]; [`LocalError::Config`] for invalid
    /// sizes or a non-loopback address with the dev authorizer;
    /// [`LocalError::Reconcile`].
    pub async fn open(data_dir: impl AsRef<Path>, config: LocalConfig) -> Result<Self, LocalError> {
        let data_dir = data_dir.as_ref().to_owned();
        check_config(&config)?;
        std::fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
        let secrets = Secrets::load_or_create(&data_dir)?;
        let bucket = |name: &str| {
            ObjectStoreStorage::local(name, data_dir.join(BUCKETS_DIR).join(name))
                .map(Arc::new)
                .map_err(|source| LocalError::Bucket {
                    bucket: name.to_owned(),
                    source,
                })
        };
        let uploads = bucket(UPLOADS_BUCKET)?;
        let processed = bucket(PROCESSED_BUCKET)?;
        let quarantine_bucket = bucket(QUARANTINE_BUCKET)?;

        let queue_path = data_dir.join(QUEUE_FILE);
        let (vt, max_receive) = (config.visibility_timeout, config.max_receive_count);
        let queue = tokio::task::spawn_blocking(move || {
            DiskQueue::open(&queue_path, QUEUE_NAME)?
                .with_visibility_timeout(vt)?
                .with_dead_letter_queue(max_receive, DEAD_LETTER_QUEUE_NAME)
        })
        .await
        .map_err(|e| LocalError::Stopped {
            component: "queue",
            reason: e.to_string(),
        })?
        .map_err(LocalError::Queue)?;
        let dead_letter_queue = queue
            .dead_letter_queue()
            .expect("a redrive policy was just set");

        let quarantine = Quarantine::new(quarantine_bucket.clone(), "");
        let reconciled = reconcile(
            uploads.as_ref(),
            processed.as_ref(),
            &quarantine,
            &queue,
            &config.region,
        )
        .await?;
        tracing::info!(?reconciled, "start-up reconciliation done");

        let publishing_uploads = Arc::new(EventPublishingStorage::new(
            uploads.clone(),
            Arc::new(queue.clone()),
            config.region.clone(),
        ));
        let (scanner_impl, scanner) = choose_scanner(config.clamd.as_deref()).await;
        let policy = UploadPolicy::images_and_pdf(config.max_bytes)
            .map_err(|e| LocalError::Config(e.to_string()))?;

        // The API's address first: the endpoint's CORS rule names it.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| LocalError::Bind {
                addr: config.listen,
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| LocalError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut origins = vec![format!("http://{api_addr}")];
        if api_addr.ip().is_loopback() {
            origins.push(format!("http://localhost:{}", api_addr.port()));
        }
        let cors = upload_core::cors::CorsConfig::new(origins)
            .map_err(|e| LocalError::Config(e.to_string()))?;
        let credentials = secrets.credentials();
        let endpoint = LocalEndpoint::new(Verifier::new(&config.region, [credentials.clone()]))
            .with_bucket(
                publishing_uploads.clone(),
                Some(publishing_uploads.clone() as Arc<dyn MultipartStore>),
            )
            .with_bucket(processed.clone(), None)
            .with_cors(UPLOADS_BUCKET, cors.clone())
            .with_cors(PROCESSED_BUCKET, cors)
            .with_max_object_bytes(config.max_bytes)
            .bind(config.endpoint_listen)
            .await
            .map_err(|source| LocalError::Bind {
                addr: config.endpoint_listen,
                source,
            })?;
        let presigner = Arc::new(Presigner::new(endpoint.url(), &config.region, credentials)?);

        let mut server_config = ServerConfig::new(policy.clone());
        server_config.multipart_threshold = config.multipart_threshold;
        server_config.part_size = config.part_size;
        let session_secret = secrets.session_secret_bytes().map_err(LocalError::Config)?;
        let state = AppState {
            presigner: Arc::new(presigner.clone()),
            uploads: publishing_uploads.clone(),
            processed: processed.clone(),
            processed_presigner: Arc::new(presigner.clone()),
            config: Arc::new(server_config),
            session_secret: Arc::new(session_secret),
            authorizer: config.authorizer.clone().unwrap_or_else(|| {
                tracing::warn!(
                    "DEV-ONLY authorizer: the owner of every API request is its x-owner header, trusted as sent"
                );
                Arc::new(crate::dev_auth::DevHeaderAuthorizer)
            }),
        };
        let app = match config.extra_routes.clone() {
            Some(extra) => extra.merge(state.router()),
            None => state.router(),
        };
        let (api_stop, stopped) = oneshot::channel::<()>();
        let api_task = tokio::spawn(upload_presign::serve(
            listener,
            app,
            ServerTimeouts::default(),
            async move {
                let _ = stopped.await;
            },
        ));

        let worker = config.run_worker.then(|| {
            // The API's default route, processed as the worker's default
            // (said explicitly, so the worker does not warn per upload).
            let worker_config = WorkerConfig::new(policy.clone()).with_max_in_flight(2);
            let default_route =
                RouteProcessing::variants(worker_config.variants.clone()).with_policy(policy);
            let worker_config = worker_config.with_route(DEFAULT_ROUTE, default_route);
            let worker = Worker::new(
                Arc::new(queue.clone()),
                uploads.clone(),
                processed.clone(),
                scanner_impl,
                Arc::new(StandardCodec::default()),
                quarantine,
                worker_config,
            )
            .with_dead_letter_queue(Arc::new(dead_letter_queue.clone()));
            spawn_worker(worker)
        });
        if worker.is_none() {
            tracing::warn!("the worker is off: events wait in the queue file for a start with it");
        }
        tracing::info!(api = %api_addr, endpoint = %endpoint.local_addr(), data = %data_dir.display(), "local mode running");
        Ok(Self {
            data_dir,
            api_addr,
            api_stop: Some(api_stop),
            api_task,
            endpoint_url: endpoint.url(),
            endpoint: Some(endpoint),
            worker,
            queue,
            dead_letter_queue,
            uploads,
            publishing_uploads,
            processed,
            quarantine: quarantine_bucket,
            presigner,
            scanner,
            reconciled,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `http://{addr}` of the upload API (and the extra routes).
    pub fn api_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.api_addr)).expect("socket address URL")
    }

    /// `http://{addr}` of the local upload endpoint (path-style buckets).
    pub fn endpoint_url(&self) -> Url {
        self.endpoint_url.clone()
    }

    /// Signs URLs for the endpoint with the persisted credentials (e.g.
    /// a presigned GET of a variant in [`PROCESSED_BUCKET`]).
    pub fn presigner(&self) -> &Arc<Presigner> {
        &self.presigner
    }

    /// The uploads bucket as stored (writes through it send no event).
    pub fn uploads(&self) -> &Arc<ObjectStoreStorage> {
        &self.uploads
    }

    /// The uploads bucket as the endpoint and the API write it (each
    /// completed write sends its event).
    pub fn publishing_uploads(&self) -> &Arc<PublishingUploads> {
        &self.publishing_uploads
    }

    /// The processed bucket.
    pub fn processed(&self) -> &Arc<ObjectStoreStorage> {
        &self.processed
    }

    /// The quarantine bucket.
    pub fn quarantine(&self) -> &Arc<ObjectStoreStorage> {
        &self.quarantine
    }

    /// The event queue.
    pub fn queue(&self) -> &DiskQueue {
        &self.queue
    }

    /// Its dead-letter queue.
    pub fn dead_letter_queue(&self) -> &DiskQueue {
        &self.dead_letter_queue
    }

    /// The scanner chosen at start.
    pub fn scanner(&self) -> &ScannerChoice {
        &self.scanner
    }

    /// What the start-up reconciliation did.
    pub fn reconciled(&self) -> ReconcileReport {
        self.reconciled
    }

    /// The worker's health; `None` when it does not run here.
    pub fn worker_health(&self) -> Option<Health> {
        self.worker.as_ref().map(WorkerHandle::health)
    }

    /// Stops taking requests (the API, then the endpoint, each finishing
    /// requests in progress), then stops the worker (messages in progress
    /// get its shutdown grace; those unfinished become visible again in
    /// the queue file). Returns the worker's counts (zero without one).
    ///
    /// # Errors
    /// [`LocalError::Stopped`] naming the first component that failed; the
    /// others are still stopped.
    pub async fn shutdown(mut self) -> Result<RunStats, LocalError> {
        let mut first: Option<LocalError> = None;
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.api_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first.get_or_insert(LocalError::Stopped {
                    component: "api",
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                first.get_or_insert(LocalError::Stopped {
                    component: "api",
                    reason: e.to_string(),
                });
            }
        }
        if let Some(endpoint) = self.endpoint.take()
            && let Err(e) = endpoint.shutdown().await
        {
            first.get_or_insert(LocalError::Stopped {
                component: "endpoint",
                reason: e.to_string(),
            });
        }
        let stats = match self.worker.take() {
            Some(w) => match w.shutdown().await {
                Ok(s) => s,
                Err(e) => {
                    first.get_or_insert(LocalError::Stopped {
                        component: "worker",
                        reason: e.to_string(),
                    });
                    RunStats::default()
                }
            },
            None => RunStats::default(),
        };
        match first {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

impl Drop for LocalMode {
    fn drop(&mut self) {
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Refuses sizes the API or the planner would refuse later, and the dev
/// authorizer on an address other machines reach.
fn check_config(c: &LocalConfig) -> Result<(), LocalError> {
    if c.authorizer.is_none() {
        for addr in [c.listen, c.endpoint_listen] {
            if !addr.ip().is_loopback() {
                return Err(LocalError::Config(format!(
                    "{addr} is not a loopback address: the dev authorizer trusts the client's x-owner header, so the local mode listens on 127.0.0.1 (or ::1) only unless given an authorizer of its own"
                )));
            }
        }
    }
    if !c.part_size.is_multiple_of(MIB) || !(5 * MIB..=5 * 1024 * MIB).contains(&c.part_size) {
        return Err(LocalError::Config(format!(
            "part size {} bytes: must be whole MiB, 5 MiB..=5 GiB",
            c.part_size
        )));
    }
    if c.max_bytes == 0 {
        return Err(LocalError::Config("max bytes must be at least 1".into()));
    }
    if !(1..=1000).contains(&c.max_receive_count) {
        return Err(LocalError::Config(format!(
            "max receive count {}: must be 1..=1000",
            c.max_receive_count
        )));
    }
    Ok(())
}
