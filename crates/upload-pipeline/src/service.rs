//! Running the worker as a service (feature `service`): its health routes
//! as an axum [`Router`], the shutdown signal (SIGTERM or Ctrl-C), the
//! worker as its own binary ([`serve_worker`]) or in-process beside an
//! app's own server ([`spawn_worker`]). Messages in progress at shutdown
//! get [`WorkerConfig::shutdown_grace`](crate::WorkerConfig::shutdown_grace)
//! to finish; what does not finish is made visible again, never lost.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::oneshot;

use crate::worker::{Health, RunStats, Worker};

/// Why the worker service stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The health endpoint's address could not be bound.
    #[error("health endpoint on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The worker's run loop failed (its queue could not be read).
    #[error(transparent)]
    Worker(#[from] crate::Error),
    /// The task running the worker panicked or was cancelled.
    #[error("the worker task ended abnormally: {0}")]
    Task(String),
    /// The metrics recorder could not be installed (another recorder is
    /// already installed in this process).
    #[error("metrics recorder: {0}")]
    Metrics(String),
    /// The OTLP exporter could not be built or could not export.
    #[error("tracing export: {0}")]
    Tracing(String),
}

/// Installs the process-wide `metrics` recorder of the Prometheus text
/// exporter (feature `prometheus`), with [`STAGE_BUCKETS`] as the buckets
/// of the `*_seconds` histograms (rendered as Prometheus histograms, not
/// summaries), and registers the worker's metric descriptions
/// ([`crate::metrics::describe`]). Serve the handle with
/// [`metrics_router`]. The upload API (`upload-server`) records through
/// the same recorder when it runs in the same process. Called within a
/// tokio runtime, it spawns the exporter's upkeep (every 5 s), which folds
/// histogram samples in between scrapes so they do not accumulate.
///
/// # Errors
/// [`ServiceError::Metrics`] when a recorder is already installed.
///
/// [`STAGE_BUCKETS`]: crate::metrics::STAGE_BUCKETS
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle, ServiceError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            crate::metrics::STAGE_BUCKETS,
        )
        .map_err(|e| ServiceError::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| ServiceError::Metrics(e.to_string()))?;
    crate::metrics::describe();
    // Histogram samples wait in the recorder until a render or an upkeep
    // folds them in: without scrapes they would pile up.
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let h = handle.clone();
            rt.spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    every.tick().await;
                    h.run_upkeep();
                }
            });
        }
        Err(_) => tracing::warn!(
            "install_prometheus outside a tokio runtime: call PrometheusHandle::run_upkeep every few seconds, or histogram samples accumulate between scrapes"
        ),
    }
    Ok(handle)
}

/// OpenTelemetry tracing exported over OTLP/HTTP with JSON bodies (feature
/// `otlp`): the tracer provider behind [`otel_layer`]. Call
/// [`OtlpTracing::shutdown`] before the process exits, or spans still
/// batched are lost.
#[cfg(feature = "otlp")]
#[derive(Debug, Clone)]
pub struct OtlpTracing {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

/// Builds an OTLP/HTTP span exporter to `endpoint` (the collector's base
/// URL, e.g. `http://127.0.0.1:4318`; spans go to `{endpoint}/v1/traces`),
/// batched on the SDK's own thread, with `service.name` = `service_name`.
/// Add [`otel_layer`] to the application's `tracing` subscriber: the
/// upload API's `presign` span, and the worker's `process` span and its
/// children (scan, decode, encode, upload, notify), then share one trace
/// per upload (`upload_core::trace`).
///
/// # Errors
/// [`ServiceError::Tracing`] when the exporter cannot be built (a bad URL).
#[cfg(feature = "otlp")]
pub fn install_otlp(endpoint: &str, service_name: &str) -> Result<OtlpTracing, ServiceError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| ServiceError::Tracing(e.to_string()))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    Ok(OtlpTracing { provider })
}

#[cfg(feature = "otlp")]
impl OtlpTracing {
    /// Exports every span ended so far.
    ///
    /// # Errors
    /// [`ServiceError::Tracing`] when the collector could not be reached.
    pub fn flush(&self) -> Result<(), ServiceError> {
        self.provider
            .force_flush()
            .map_err(|e| ServiceError::Tracing(e.to_string()))
    }

    /// Exports what is left and stops the exporter.
    ///
    /// # Errors
    /// [`ServiceError::Tracing`] when the last export failed.
    pub fn shutdown(&self) -> Result<(), ServiceError> {
        self.provider
            .shutdown()
            .map_err(|e| ServiceError::Tracing(e.to_string()))
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of
/// `tracing` (feature `otlp`), for
/// `tracing_subscriber::registry().with(otel_layer(&t))`.
#[cfg(feature = "otlp")]
pub fn otel_layer<S>(
    tracing: &OtlpTracing,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    tracing_opentelemetry::layer().with_tracer(tracing.provider.tracer("upload-sdk"))
}

/// `GET /metrics`: the metrics of `handle` in the Prometheus text
/// exposition format (`text/plain; version=0.0.4`), to serve beside the
/// health routes ([`serve_worker_with`]) or merge into an app's router.
/// Feature `prometheus`.
#[cfg(feature = "prometheus")]
pub fn metrics_router(handle: metrics_exporter_prometheus::PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(h): axum::extract::State<
                    metrics_exporter_prometheus::PrometheusHandle,
                >| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        h.render(),
                    )
                },
            ),
        )
        .with_state(handle)
}

/// The health routes of a worker, to serve on their own port or merge
/// into an app's router: `GET /healthz` (liveness: 200 while the run loop
/// runs, 503 after it ended) and `GET /readyz` (readiness: 200 while it
/// runs, is not stopping and its last receive succeeded, else 503). Both
/// answer the [`HealthSnapshot`](crate::HealthSnapshot) as JSON.
pub fn health_router(health: Health) -> Router {
    let probe = |ready_only: bool| {
        move |axum::extract::State(h): axum::extract::State<Health>| async move {
            let s = h.snapshot();
            let ok = if ready_only { s.ready } else { s.running };
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, axum::Json(s))
        }
    };
    Router::new()
        .route("/healthz", get(probe(false)))
        .route("/readyz", get(probe(true)))
        .with_state(health)
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what container
/// runtimes send before they kill). If a handler cannot be installed, that
/// signal is not waited for (and a warning is logged).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Runs `worker` as a service until `shutdown` completes (pass
/// [`shutdown_signal`] for a binary), serving [`health_router`] on
/// `health_addr` when given (bound before the first receive, stopped after
/// the worker). Returns the run's counts.
///
/// # Errors
/// [`ServiceError::Bind`] before anything is received;
/// [`ServiceError::Worker`] when the queue cannot be read.
pub async fn serve_worker(
    worker: &Worker,
    health_addr: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, ServiceError> {
    serve_worker_with(worker, health_addr, Router::new(), shutdown).await
}

/// As [`serve_worker`], with `extra` routes served beside the health routes
/// on `health_addr` (e.g. [`metrics_router`]).
///
/// # Errors
/// As [`serve_worker`].
pub async fn serve_worker_with(
    worker: &Worker,
    health_addr: Option<SocketAddr>,
    extra: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, ServiceError> {
    let (stop_health, health_stopped) = oneshot::channel::<()>();
    let server = match health_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Bind { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(addr = %bound, "health endpoint: /healthz, /readyz");
            let router = health_router(worker.health()).merge(extra);
            Some(tokio::spawn(async move {
                let stopped = async {
                    let _ = health_stopped.await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "health endpoint stopped");
                }
            }))
        }
        None => None,
    };
    let result = worker.run(shutdown).await;
    let _ = stop_health.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(result?)
}

/// A worker running in-process (see [`spawn_worker`]).
#[derive(Debug)]
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<crate::Result<RunStats>>,
    health: Health,
}

impl WorkerHandle {
    /// The running worker's health (e.g. for an app's own `/readyz`).
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Asks the worker to stop and waits for it: messages in progress get
    /// the shutdown grace period; returns the run's counts.
    ///
    /// # Errors
    /// [`ServiceError::Worker`] when its queue could not be read;
    /// [`ServiceError::Task`] when the task panicked.
    pub async fn shutdown(mut self) -> Result<RunStats, ServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServiceError::Task(e.to_string())),
        }
    }
}

/// Runs `worker` on the current tokio runtime, beside the app's own
/// server, until [`WorkerHandle::shutdown`] (or the handle is dropped,
/// which stops it the same way).
pub fn spawn_worker(worker: Worker) -> WorkerHandle {
    let (stop, stopped) = oneshot::channel::<()>();
    let health = worker.health();
    let task = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    WorkerHandle {
        stop: Some(stop),
        task,
        health,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use upload_core::{Bytes, MemoryStorage, ObjectKey, PutOptions, Storage, UploadPolicy};
    use upload_scan::{MemoryScanner, Quarantine};

    use super::*;
    use crate::{MemoryQueue, ReceiveOptions, StandardCodec, WorkerConfig};

    fn worker() -> (Worker, Arc<MemoryStorage>, Arc<MemoryStorage>) {
        let queue = Arc::new(MemoryQueue::new("events"));
        let uploads = Arc::new(
            MemoryStorage::new("uploads")
                .unwrap()
                .with_events(queue.clone()),
        );
        let processed = Arc::new(MemoryStorage::new("processed").unwrap());
        let config = WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap())
            .with_receive(ReceiveOptions::default().with_wait(Duration::from_millis(50)));
        let w = Worker::new(
            queue,
            uploads.clone(),
            processed.clone(),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(uploads.clone(), "quarantine/"),
            config,
        );
        (w, uploads, processed)
    }

    #[tokio::test]
    async fn an_in_process_worker_processes_until_shut_down() {
        let (w, uploads, processed) = worker();
        let handle = spawn_worker(w);
        let k = ObjectKey::new("uploads/u/doc.pdf").unwrap();
        uploads
            .put(
                &k,
                Bytes::from_static(b"%PDF-1.4\n%%EOF\n"),
                PutOptions::default().with_content_type("application/pdf"),
            )
            .await
            .unwrap();
        let mkey = crate::manifest::manifest_key(&k).unwrap();
        let mut waited = 0;
        while processed.head(&mkey).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
            assert!(waited < 500, "the worker never wrote the manifest");
        }
        assert!(handle.health().snapshot().running);
        let stats = handle.shutdown().await.unwrap();
        assert_eq!((stats.messages, stats.clean, stats.failed), (1, 1, 0));
    }

    #[tokio::test]
    async fn the_service_serves_health_until_shutdown_and_reports_bind_errors() {
        let (w, _, _) = worker();
        // A port that is taken: a typed error before anything runs.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = serve_worker(&w, Some(addr), std::future::pending())
            .await
            .unwrap_err();
        assert!(
            matches!(e, ServiceError::Bind { addr: a, .. } if a == addr),
            "{e}"
        );
        drop(taken);

        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(async move {
            serve_worker(&w, Some(addr), async {
                let _ = stopped.await;
            })
            .await
        });
        // Health answers while it runs.
        let mut ready = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                if out.starts_with("HTTP/1.1 200") {
                    ready = Some(out);
                    break;
                }
            }
        }
        let ready = ready.expect("/readyz answered 200 while the worker ran");
        assert!(ready.contains("\"ready\":true"), "{ready}");
        stop.send(()).unwrap();
        let stats = run.await.unwrap().unwrap();
        assert_eq!(stats.messages, 0);
        // The health endpoint stopped with the worker.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
