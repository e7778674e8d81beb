//! The worker: ObjectCreated and ObjectRemoved events in from a queue,
//! checked, scanned and processed uploads out, safe to run in any number.
//!
//! [`Worker`] is the message loop (long polling, messages in flight,
//! visibility heartbeat, retry backoff, dead-letter, graceful shutdown,
//! health); [`UploadProcessor`] is what it does with each record. Another
//! [`RecordHandler`] can take its place ([`Worker::with_handler`]).

pub mod probe;
pub(crate) mod upload;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt};
use tokio::time::Instant;
use upload_core::{EventMessage, S3EventRecord, Storage, UploadPolicy, parse_event_message};
use upload_scan::{Quarantine, Scanner};

pub use upload::{MANIFEST_CACHE_CONTROL, UploadProcessor, VARIANT_CACHE_CONTROL};

use crate::codec::{DecodeLimits, ImageCodec, VariantSpec};
use crate::error::{Error, Result};
use crate::manifest::Outcome;
use crate::media::MediaProcessor;
use crate::queue::{
    DEFAULT_VISIBILITY_TIMEOUT, MAX_RECEIVE_BATCH, MAX_VISIBILITY_TIMEOUT, Queue, QueueMessage,
    ReceiveOptions,
};

/// First wait after a transient receive failure in [`Worker::run`].
const RECEIVE_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between receive retries in [`Worker::run`].
const RECEIVE_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest time a handled message waits for its delete to be sent in a
/// batch (`DeleteMessageBatch`, 10 a request).
const DELETE_BATCH_DELAY: Duration = Duration::from_millis(100);
/// Deletes per `DeleteMessageBatch` request (SQS).
const DELETE_BATCH_MAX: usize = 10;

/// What a [`RecordHandler`] did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// The upload was processed to this outcome.
    Processed(Outcome),
    /// The manifest already records this version: nothing was written.
    AlreadyProcessed,
    /// The event is about an older version than the one stored or already
    /// processed: nothing was written.
    Superseded,
    /// The original was deleted; its variants and manifest were deleted.
    Removed,
    /// Not for this handler: another bucket, an invalid key, the handler's
    /// own output, another event type, or an original already gone.
    Skipped,
}

/// Handles the records of the messages a [`Worker`] receives.
///
/// `Ok` means the record is done with (the message is deleted once all its
/// records are); `Err` leaves the whole message on the queue, so handling a
/// record must be safe to repeat.
#[async_trait]
pub trait RecordHandler: Send + Sync + std::fmt::Debug {
    /// Handles one record.
    ///
    /// # Errors
    /// Any failure that a later delivery may not hit (storage, scanner).
    async fn handle(&self, record: &S3EventRecord) -> Result<Handled>;
}

/// How often the visibility of a message in progress is extended, and to
/// what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Heartbeat {
    /// From the receive options' visibility timeout `t` (the SQS default of
    /// 30 s when they set none): every `t / 3`, extend to `t`.
    Auto,
    /// Never extend: a job longer than the visibility timeout is delivered
    /// again to another worker.
    Off,
    /// Every `every`, set the remaining visibility to `extend_to`
    /// (`ChangeMessageVisibility`; at most 12 h in all, per SQS).
    Every {
        /// Interval between extensions.
        every: Duration,
        /// Visibility timeout set at each extension.
        extend_to: Duration,
    },
}

/// How a worker processes uploads. Build with [`WorkerConfig::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Checked against the type sniffed from magic bytes and the real size.
    pub policy: UploadPolicy,
    /// Variants made of each clean image (default: thumb 256 and medium
    /// 1024, WebP quality 80).
    pub variants: Vec<VariantSpec>,
    /// Image decode limits (default: 40 MP and a memory bound, no limit on
    /// one side; see [`DecodeLimits`]).
    pub decode_limits: DecodeLimits,
    /// How messages are received (default: up to 10 a request, 20 s long
    /// poll, the queue's visibility timeout).
    pub receive: ReceiveOptions,
    /// Most messages in progress at once, at least 1 (default 4). A new
    /// receive asks only for as many as there are free slots.
    pub max_in_flight: usize,
    /// Visibility extension of messages in progress (default
    /// [`Heartbeat::Auto`]).
    pub heartbeat: Heartbeat,
    /// A failed message is made visible again after `retry_base × 2^(n-1)`
    /// (n = its receive count), capped at [`WorkerConfig::retry_max`], with
    /// up to half of it taken off at random (default 2 s).
    pub retry_base: Duration,
    /// Longest retry delay (default 5 min; at most 12 h).
    pub retry_max: Duration,
    /// After shutdown is asked for, how long messages in progress may run
    /// before they are abandoned and made visible again (default 20 s).
    pub shutdown_grace: Duration,
    /// Processing per upload route, by route name (default: none). An
    /// upload whose original carries `x-amz-meta-upload-route` (signed in
    /// by the upload API, see [`upload_core::metadata`]) naming one of
    /// these is checked against that route's policy and gets that route's
    /// variants; any other upload gets [`WorkerConfig::policy`] and
    /// [`WorkerConfig::variants`].
    pub routes: BTreeMap<String, RouteProcessing>,
    /// Media processors asked before the built-in
    /// [`ImageProcessor`](crate::media::ImageProcessor), in this order:
    /// the first that [handles](MediaProcessor::handles) an upload's sniffed
    /// type processes it (default: none; an allowed type no processor
    /// handles is scanned and kept with no variants). Add them with
    /// [`WorkerConfig::with_processor`], e.g. `PdfProcessor` (feature
    /// `pdf`) and `VideoProcessor` (feature `video`).
    pub processors: Vec<Arc<dyn MediaProcessor>>,
}

/// What the worker does with the uploads of one route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteProcessing {
    /// Checked against the sniffed type and the real size; `None` takes
    /// [`WorkerConfig::policy`].
    pub policy: Option<UploadPolicy>,
    /// Variants of each clean image; empty for none (the upload is
    /// scanned, tagged and kept, e.g. documents).
    pub variants: Vec<VariantSpec>,
}

impl RouteProcessing {
    /// The route's variants, under the worker's policy.
    pub fn variants(variants: Vec<VariantSpec>) -> Self {
        Self {
            policy: None,
            variants,
        }
    }

    /// No variants: scanned, tagged and kept.
    pub fn scan_only() -> Self {
        Self::variants(Vec::new())
    }

    /// Sets the route's own policy.
    pub fn with_policy(mut self, policy: UploadPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}

impl WorkerConfig {
    /// Sets the processing of the uploads of route `name`.
    pub fn with_route(mut self, name: impl Into<String>, processing: RouteProcessing) -> Self {
        self.routes.insert(name.into(), processing);
        self
    }

    /// Defaults around `policy`.
    pub fn new(policy: UploadPolicy) -> Self {
        Self {
            policy,
            variants: VariantSpec::defaults(),
            decode_limits: DecodeLimits::default(),
            receive: ReceiveOptions::default(),
            max_in_flight: 4,
            heartbeat: Heartbeat::Auto,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(20),
            routes: BTreeMap::new(),
            processors: Vec::new(),
        }
    }

    /// Adds `processor`, asked after those added before it and before the
    /// built-in image processor: to add a media type (a PDF or video
    /// poster), or to replace the processing of one (a processor of
    /// `image/*` of your own replaces the built-in one).
    pub fn with_processor(mut self, processor: Arc<dyn MediaProcessor>) -> Self {
        self.processors.push(processor);
        self
    }
    /// Sets the variants.
    pub fn with_variants(mut self, variants: Vec<VariantSpec>) -> Self {
        self.variants = variants;
        self
    }
    /// Sets the decode limits.
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }
    /// Sets the receive options.
    pub fn with_receive(mut self, receive: ReceiveOptions) -> Self {
        self.receive = receive;
        self
    }
    /// Sets how many messages are processed at once (0 is taken as 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
    /// Sets the visibility heartbeat.
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }
    /// Sets the retry delays of failed messages (`max` is capped at 12 h).
    pub fn with_retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max.min(MAX_VISIBILITY_TIMEOUT);
        self
    }
    /// Sets how long messages in progress may finish after shutdown.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The heartbeat's `(every, extend_to)`, or `None` when off.
    pub fn heartbeat_period(&self) -> Option<(Duration, Duration)> {
        match self.heartbeat {
            Heartbeat::Off => None,
            Heartbeat::Every { every, extend_to } => {
                Some((every.max(Duration::from_millis(10)), extend_to))
            }
            Heartbeat::Auto => {
                let t = self
                    .receive
                    .visibility_timeout
                    .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT);
                (!t.is_zero()).then(|| ((t / 3).max(Duration::from_millis(10)), t))
            }
        }
    }

    /// The delay before a message that failed at its `receive_count`-th
    /// delivery is visible again; `salt` picks the random part.
    fn retry_delay(&self, receive_count: u32, salt: u64) -> Duration {
        let exp = receive_count.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.retry_max)
            .min(MAX_VISIBILITY_TIMEOUT);
        let half_ms = (full.as_millis() / 2) as u64;
        let jitter = if half_ms == 0 {
            0
        } else {
            salt % (half_ms + 1)
        };
        full - Duration::from_millis(jitter)
    }
}

/// Counts of what a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Messages received.
    pub messages: u64,
    /// Messages received again (receive count above 1): earlier deliveries
    /// failed, timed out or were abandoned.
    pub retried: u64,
    /// Uploads processed clean.
    pub clean: u64,
    /// Uploads quarantined as infected.
    pub infected: u64,
    /// Uploads quarantined as unscannable.
    pub unscannable: u64,
    /// Uploads rejected by policy or as undecodable.
    pub rejected: u64,
    /// Records whose version the manifest already records (redeliveries,
    /// duplicates): no writes.
    pub already_processed: u64,
    /// Records about an older version than the one stored or processed:
    /// no writes.
    pub superseded: u64,
    /// Removed originals whose variants and manifest were deleted.
    pub removed: u64,
    /// `s3:TestEvent` messages deleted.
    pub test_events: u64,
    /// Records skipped: another bucket, an invalid key, an event type not
    /// handled, the worker's own output, or the original already gone.
    pub skipped: u64,
    /// Messages left on the queue after an error (visible again after the
    /// retry backoff, dead-lettered after the redrive count).
    pub failed: u64,
    /// Malformed messages moved to the worker's dead-letter queue at once.
    pub dead_lettered: u64,
    /// Messages in progress at shutdown that were made visible again.
    pub released: u64,
}

impl RunStats {
    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &RunStats) {
        self.messages += o.messages;
        self.retried += o.retried;
        self.clean += o.clean;
        self.infected += o.infected;
        self.unscannable += o.unscannable;
        self.rejected += o.rejected;
        self.already_processed += o.already_processed;
        self.superseded += o.superseded;
        self.removed += o.removed;
        self.test_events += o.test_events;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.dead_lettered += o.dead_lettered;
        self.released += o.released;
    }

    /// Uploads quarantined (infected or unscannable).
    pub fn quarantined(&self) -> u64 {
        self.infected + self.unscannable
    }

    fn count(&mut self, handled: Handled) {
        match handled {
            Handled::Processed(Outcome::Clean) => self.clean += 1,
            Handled::Processed(Outcome::Infected) => self.infected += 1,
            Handled::Processed(Outcome::Unscannable) => self.unscannable += 1,
            Handled::Processed(Outcome::Rejected) => self.rejected += 1,
            Handled::AlreadyProcessed => self.already_processed += 1,
            Handled::Superseded => self.superseded += 1,
            Handled::Removed => self.removed += 1,
            Handled::Skipped => self.skipped += 1,
        }
    }
}

/// A point-in-time view of a worker's health ([`Health::snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// At least one run loop is running.
    pub running: bool,
    /// Shutdown was asked for in at least one running loop.
    pub stopping: bool,
    /// Ready for work: a loop runs that is not stopping, and the last
    /// receive succeeded.
    pub ready: bool,
    /// Messages in progress, in all loops.
    pub in_flight: usize,
    /// Receive failures in a row (0 after a success).
    pub receive_errors_in_a_row: u32,
    /// Seconds since the last successful receive, if any.
    pub last_receive_secs_ago: Option<f64>,
    /// Counts since the worker was built.
    pub stats: RunStats,
}

#[derive(Debug, Default)]
struct HealthState {
    loops_running: usize,
    loops_stopping: usize,
    in_flight: usize,
    receive_errors: u32,
    last_receive_ok: Option<Instant>,
    stats: RunStats,
}

/// The health of a [`Worker`] (liveness and readiness probes, counters).
/// Cheap to clone; clones of a worker share it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<Mutex<HealthState>>,
}

impl Health {
    /// The current state.
    pub fn snapshot(&self) -> HealthSnapshot {
        let s = self.lock();
        let running = s.loops_running > 0;
        HealthSnapshot {
            running,
            stopping: running && s.loops_stopping > 0,
            ready: s.loops_running > s.loops_stopping
                && s.receive_errors == 0
                && s.last_receive_ok.is_some(),
            in_flight: s.in_flight,
            receive_errors_in_a_row: s.receive_errors,
            last_receive_secs_ago: s.last_receive_ok.map(|t| t.elapsed().as_secs_f64()),
            stats: s.stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut HealthState)) {
        f(&mut self.lock());
    }

    /// Adds `stats` to the counts (hosts that receive messages themselves,
    /// such as the `lambda` module).
    #[cfg_attr(not(feature = "lambda"), allow(dead_code))]
    pub(crate) fn add_stats(&self, stats: &RunStats) {
        self.update(|h| h.stats.add(stats));
    }
}

/// Processes upload events from a queue, safely in any number of workers
/// and processes.
///
/// The loop long-polls for up to as many messages as it has free slots
/// (`max_in_flight`), handles them concurrently, and while each runs,
/// extends its visibility ([`Heartbeat`]) so no other worker receives it.
/// A message is deleted once every record of it is handled; on an error it
/// is made visible again after an exponential backoff with jitter
/// ([`WorkerConfig::retry_base`]), and the queue's redrive policy moves it
/// to the dead-letter queue after `maxReceiveCount` deliveries. A message
/// that is not an S3 event at all is logged and, when the worker has a
/// dead-letter queue ([`Worker::with_dead_letter_queue`]), moved there at
/// once. See [`UploadProcessor`] for what happens to each record.
///
/// Clones share the record handler (and so its per-key locks) and the
/// [`Health`]: run N clones for N workers in one process.
#[derive(Debug, Clone)]
pub struct Worker {
    queue: Arc<dyn Queue>,
    handler: Arc<dyn RecordHandler>,
    processor: Option<UploadProcessor>,
    dead_letter: Option<Arc<dyn Queue>>,
    config: WorkerConfig,
    health: Health,
}

impl Worker {
    /// A worker reading `queue`, processing objects of `uploads` into
    /// `processed` with an [`UploadProcessor`], scanning with `scanner` and
    /// quarantining into `quarantine`.
    pub fn new(
        queue: Arc<dyn Queue>,
        uploads: Arc<dyn Storage>,
        processed: Arc<dyn Storage>,
        scanner: Arc<dyn Scanner>,
        codec: Arc<dyn ImageCodec>,
        quarantine: Quarantine,
        config: WorkerConfig,
    ) -> Self {
        let processor =
            UploadProcessor::new(uploads, processed, scanner, codec, quarantine, &config);
        let mut w = Self::with_handler(queue, Arc::new(processor.clone()), config);
        w.processor = Some(processor);
        w
    }

    /// Pushes every outcome to `notifier` (see
    /// [`UploadProcessor::with_notifier`]): processed, rejected,
    /// quarantined, removed, each with the upload's route, owner and
    /// metadata, at least once. For workers made with [`Worker::new`]; a
    /// [`RecordHandler`] of your own ([`Worker::with_handler`]) notifies
    /// itself, and is left unchanged.
    pub fn with_notifier(mut self, notifier: Arc<dyn crate::notify::Notifier>) -> Self {
        match self.processor.take() {
            Some(p) => {
                let p = p.with_notifier(notifier);
                self.handler = Arc::new(p.clone());
                self.processor = Some(p);
            }
            None => tracing::warn!("with_notifier on a worker with its own RecordHandler: ignored"),
        }
        self
    }

    /// A worker handing each record of `queue` to `handler`; of `config`
    /// only the loop settings apply (receive, in flight, heartbeat, retry,
    /// shutdown grace).
    pub fn with_handler(
        queue: Arc<dyn Queue>,
        handler: Arc<dyn RecordHandler>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            queue,
            handler,
            processor: None,
            dead_letter: None,
            config,
            health: Health::default(),
        }
    }

    /// Moves messages that are not S3 events (not JSON, none of the known shapes,
    /// over 256 KiB) to `dlq` at once, body unchanged, instead of letting them
    /// fail until the redrive policy moves them.
    pub fn with_dead_letter_queue(mut self, dlq: Arc<dyn Queue>) -> Self {
        self.dead_letter = Some(dlq);
        self
    }

    /// The worker's health, for liveness and readiness probes.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Receives one batch (waiting up to the configured long poll) and
    /// processes it, at most `max_in_flight` messages at once.
    ///
    /// # Errors
    /// Only queue errors on receive; per-message failures are counted in
    /// [`RunStats::failed`] and logged.
    pub async fn run_once(&self) -> Result<RunStats> {
        let max = (self.config.max_in_flight as u32).clamp(1, MAX_RECEIVE_BATCH);
        let mut opts = self.receive_options();
        opts.max_messages = opts.max_messages.min(max);
        let batch = self.queue.receive(&opts).await?;
        crate::metrics::set_queue_lag(batch.iter().map(|m| m.body.as_str()));
        let mut stats = RunStats {
            messages: batch.len() as u64,
            ..RunStats::default()
        };
        let done: Vec<(RunStats, Option<String>)> = futures::stream::iter(batch)
            .map(|m| self.handle_message(m))
            .buffer_unordered(self.config.max_in_flight.max(1))
            .collect()
            .await;
        let mut handled = Vec::new();
        for (s, delete) in done {
            stats.add(&s);
            handled.extend(delete);
        }
        self.delete_handled(&mut handled).await;
        crate::metrics::record_stats(&stats);
        Ok(stats)
    }

    /// Processes messages until a receive without waiting finds none
    /// visible and none is in progress. Messages that failed stay invisible
    /// for their retry backoff, so they do not keep this loop busy.
    ///
    /// # Errors
    /// Queue errors on receive (after the messages in progress finish).
    pub async fn run_until_idle(&self) -> Result<RunStats> {
        self.drive(std::future::pending(), true).await
    }

    /// Long-polls and processes until `shutdown` completes. Then no new
    /// message is received; messages in progress get
    /// [`WorkerConfig::shutdown_grace`] to finish, and those still running
    /// are abandoned and made visible again at once, for another worker
    /// (every step of processing is safe to repeat). A transient receive
    /// failure ([`Error::QueueUnavailable`]) is retried with exponential
    /// backoff from 1 s to 30 s while messages in progress go on.
    ///
    /// # Errors
    /// Permanent queue errors on receive (a wrong queue URL, no access),
    /// after the messages in progress finish.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RunStats> {
        self.drive(shutdown, false).await
    }

    /// The receive options the loops use: with [`Heartbeat::Auto`] and no
    /// visibility timeout set, the SQS default (30 s) is asked for
    /// explicitly, so the heartbeat's assumption holds whatever the queue's
    /// own default is.
    fn receive_options(&self) -> ReceiveOptions {
        let mut opts = self.config.receive.clone();
        if self.config.heartbeat == Heartbeat::Auto && opts.visibility_timeout.is_none() {
            opts.visibility_timeout = Some(DEFAULT_VISIBILITY_TIMEOUT);
        }
        opts
    }

    async fn drive(
        &self,
        shutdown: impl Future<Output = ()>,
        until_idle: bool,
    ) -> Result<RunStats> {
        tokio::pin!(shutdown);
        let max = self.config.max_in_flight.max(1);
        let mut opts = self.receive_options();
        if until_idle {
            opts.wait = Duration::ZERO;
        }
        let mut in_flight = FuturesUnordered::new();
        let mut handles: HashSet<String> = HashSet::new();
        let mut receiving: Option<BoxFuture<'_, Result<Vec<QueueMessage>>>> = None;
        let mut not_before: Option<Instant> = None;
        let mut backoff = RECEIVE_BACKOFF_MIN;
        let mut idle = false;
        let mut stopping: Option<Instant> = None;
        let mut failure: Option<Error> = None;
        let mut total = RunStats::default();
        // Handled messages waiting for their batched delete.
        let mut handled: Vec<String> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        let mut this_loop = LoopGuard::start(&self.health);

        loop {
            if stopping.is_none() && receiving.is_none() && !idle && in_flight.len() < max {
                let free = (max - in_flight.len()).min(MAX_RECEIVE_BATCH as usize) as u32;
                let o = opts.clone().with_max_messages(opts.max_messages.min(free));
                let wait_until = not_before.take();
                let queue = &self.queue;
                receiving = Some(Box::pin(async move {
                    if let Some(t) = wait_until {
                        tokio::time::sleep_until(t).await;
                    }
                    queue.receive(&o).await
                }));
            }
            // Stopping: done when nothing is in progress. A receive still
            // waiting then is dropped (its long poll may last 20 s); one
            // that answers before is released below.
            if in_flight.is_empty() && (stopping.is_some() || (until_idle && idle)) {
                break;
            }
            let flush_due = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let grace_over = async {
                match stopping {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut shutdown, if stopping.is_none() => {
                    tracing::info!(in_flight = in_flight.len(), "shutdown: no more receives");
                    stopping = Some(Instant::now() + self.config.shutdown_grace);
                    this_loop.stopping();
                }
                Some((handle, (stats, delete))) = in_flight.next(), if !in_flight.is_empty() => {
                    handles.remove(&handle);
                    total.add(&stats);
                    if let Some(h) = delete {
                        handled.push(h);
                        flush_at.get_or_insert_with(|| Instant::now() + DELETE_BATCH_DELAY);
                        if handled.len() >= DELETE_BATCH_MAX {
                            self.delete_handled(&mut handled).await;
                            flush_at = None;
                        }
                    }
                    idle = false;
                    this_loop.in_flight(handles.len(), &stats);
                }
                received = async { receiving.as_mut().expect("guarded").await }, if receiving.is_some() => {
                    receiving = None;
                    match received {
                        Ok(batch) if stopping.is_some() => {
                            // Answered after shutdown began: not started,
                            // visible again at once for another worker.
                            for m in &batch {
                                match self.queue.change_visibility(&m.receipt_handle, Duration::ZERO).await {
                                    Ok(()) => total.released += 1,
                                    Err(e) => tracing::warn!(error = %e, "could not release a message received during shutdown"),
                                }
                            }
                        }
                        Ok(batch) => {
                            backoff = RECEIVE_BACKOFF_MIN;
                            this_loop.received_ok();
                            crate::metrics::set_queue_lag(batch.iter().map(|m| m.body.as_str()));
                            if batch.is_empty() && !until_idle && opts.wait.is_zero() {
                                // No long poll: do not hammer an empty queue.
                                not_before = Some(Instant::now() + RECEIVE_BACKOFF_MIN);
                            }
                            idle = batch.is_empty() && until_idle;
                            let received = RunStats {
                                messages: batch.len() as u64,
                                ..RunStats::default()
                            };
                            total.add(&received);
                            for m in batch {
                                handles.insert(m.receipt_handle.clone());
                                in_flight.push(async move {
                                    let handle = m.receipt_handle.clone();
                                    (handle, self.handle_message(m).await)
                                });
                            }
                            this_loop.in_flight(handles.len(), &received);
                        }
                        Err(e @ Error::QueueUnavailable { .. }) if !until_idle && stopping.is_none() => {
                            tracing::warn!(error = %e, retry_in = ?backoff, "receive failed; retrying");
                            this_loop.receive_failed();
                            not_before = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(RECEIVE_BACKOFF_MAX);
                        }
                        Err(_) if stopping.is_some() => {}
                        Err(e) => {
                            tracing::error!(error = %e, "receive failed; finishing the messages in progress");
                            this_loop.receive_failed();
                            failure = Some(e);
                            stopping = Some(Instant::now() + self.config.shutdown_grace);
                            this_loop.stopping();
                        }
                    }
                }
                _ = flush_due => {
                    self.delete_handled(&mut handled).await;
                    flush_at = None;
                }
                _ = grace_over => {
                    break;
                }
            }
        }
        self.delete_handled(&mut handled).await;
        // Abandoned at the end of the grace period: visible again now.
        drop(in_flight);
        let released_before = total.released;
        for h in &handles {
            match self.queue.change_visibility(h, Duration::ZERO).await {
                Ok(()) => total.released += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "could not release a message; it is redelivered after its visibility timeout")
                }
            }
        }
        if !handles.is_empty() {
            tracing::warn!(
                released = total.released - released_before,
                "messages in progress at the end of the grace period released"
            );
        }
        this_loop.in_flight(
            0,
            &RunStats {
                released: total.released,
                ..RunStats::default()
            },
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Handles one message to the end: its records, with the visibility
    /// heartbeat; then sets its retry backoff, or, when it was handled or
    /// moved to the dead-letter queue, returns its receipt handle for the
    /// caller's batched delete. Never fails: the outcome is in the counts.
    async fn handle_message(&self, msg: QueueMessage) -> (RunStats, Option<String>) {
        use tracing::Instrument as _;
        // The span follows the future, not the thread: messages processed
        // at once never log under each other's IDs.
        let span = tracing::info_span!("message", message_id = %msg.message_id, receive_count = msg.receive_count);
        async {
            // `messages` is counted at receive, so abandoned ones count.
            let mut stats = RunStats {
                retried: u64::from(msg.receive_count > 1),
                ..RunStats::default()
            };
            let mut delete = None;
            let result = self
                .with_heartbeat(&msg.receipt_handle, self.handle_body(&msg.body))
                .await;
            match result {
                Ok(s) => {
                    stats.add(&s);
                    delete = Some(msg.receipt_handle.clone());
                }
                Err(e) => {
                    let malformed = e.is_malformed_message();
                    if malformed {
                        tracing::error!(error = %e, body_bytes = msg.body.len(), "not an S3 event message");
                    }
                    if malformed && self.move_to_dead_letter(&msg.body).await {
                        stats.dead_lettered += 1;
                        delete = Some(msg.receipt_handle.clone());
                    } else {
                        stats.failed += 1;
                        tracing::error!(error = %e, "message left on the queue");
                        self.retry_later(&msg).await;
                    }
                }
            }
            (stats, delete)
        }
        .instrument(span)
        .await
    }

    /// Deletes the handled messages of `handles` in `DeleteMessageBatch`
    /// requests and empties it. A failed delete is logged: the message is
    /// delivered again, finds its work done, and writes nothing.
    async fn delete_handled(&self, handles: &mut Vec<String>) {
        if handles.is_empty() {
            return;
        }
        let results = self.queue.delete_batch(handles).await;
        for (h, r) in handles.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(error = %e, receipt_handle = %h.chars().take(40).collect::<String>(), "handled message not deleted; it will be redelivered");
            }
        }
        handles.clear();
    }

    /// Sends `body` (of a malformed message) to the worker's dead-letter
    /// queue; whether it is there now (the caller then deletes the message,
    /// or, on Lambda, reports it done).
    pub(crate) async fn move_to_dead_letter(&self, body: &str) -> bool {
        let Some(dlq) = &self.dead_letter else {
            return false;
        };
        match dlq.send(body.to_owned()).await {
            Ok(id) => {
                tracing::warn!(dead_letter_message_id = %id, "moved to the dead-letter queue");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "dead-letter queue refused the message; left on the queue");
                false
            }
        }
    }

    async fn retry_later(&self, msg: &QueueMessage) {
        use std::hash::BuildHasher as _;
        let salt = std::collections::hash_map::RandomState::new()
            .hash_one((&msg.message_id, msg.receive_count));
        let delay = self.config.retry_delay(msg.receive_count, salt);
        match self
            .queue
            .change_visibility(&msg.receipt_handle, delay)
            .await
        {
            Ok(()) => tracing::info!(retry_in = ?delay, "retry scheduled"),
            Err(e) => {
                tracing::warn!(error = %e, "retry backoff not set; redelivered after the visibility timeout");
            }
        }
    }

    /// Runs `work`, extending the visibility of `receipt_handle` on the
    /// heartbeat until it finishes.
    async fn with_heartbeat<T>(&self, receipt_handle: &str, work: impl Future<Output = T>) -> T {
        let Some((every, extend_to)) = self.config.heartbeat_period() else {
            return work.await;
        };
        tokio::pin!(work);
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beating = true;
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = tick.tick(), if beating => {
                    match self.queue.change_visibility(receipt_handle, extend_to).await {
                        Ok(()) => tracing::debug!(visible_in = ?extend_to, "visibility extended"),
                        Err(e) => {
                            // Past SQS's 12 h, or the message was received
                            // again elsewhere: the work goes on; its result
                            // is idempotent.
                            tracing::warn!(error = %e, "visibility heartbeat stopped");
                            beating = false;
                        }
                    }
                }
            }
        }
    }

    /// Handles one message and deletes it when every record is handled.
    ///
    /// # Errors
    /// Any error of parsing or handling; the message is then not deleted
    /// (and no retry backoff is set: that is the run loops' job).
    pub async fn process_message(&self, msg: &QueueMessage) -> Result<RunStats> {
        let stats = self.handle_records(&msg.body).await?;
        self.queue.delete(&msg.receipt_handle).await?;
        let stats = RunStats {
            messages: 1,
            ..stats
        };
        crate::metrics::record_stats(&stats);
        Ok(stats)
    }

    /// Handles the records of one message body (an S3 event, an
    /// `s3:TestEvent`, or an SNS/EventBridge envelope of one) without
    /// touching any queue: no delete, no visibility heartbeat, no retry
    /// backoff, no dead-lettering. What the run loops do per message, for
    /// hosts that receive and delete messages themselves (AWS Lambda's SQS
    /// event source mapping: see the `lambda` module, feature `lambda`).
    /// Every step is safe to repeat: a body handled again writes nothing
    /// new ([`RunStats::already_processed`]).
    ///
    /// The counts are of the records' outcomes; [`RunStats::messages`] is
    /// left at 0 for the caller to count.
    ///
    /// # Errors
    /// - A body that is not an S3 event message at all (not JSON, none of
    ///   the known shapes, over 256 KiB): [`Error::is_malformed_message`]
    ///   is true; no delivery of it can succeed.
    /// - Any record's transient failure (storage, scanner, notifier): the
    ///   records before it are done (and are not done again on the next
    ///   delivery), the rest are not.
    /// - A panic in the record handler (a bug): [`Error::TaskFailed`];
    ///   the panic does not propagate.
    pub async fn handle_body(&self, body: &str) -> Result<RunStats> {
        // A panic in a handler (a bug) fails this message only, as an
        // error would; the loop and the other messages go on.
        std::panic::AssertUnwindSafe(self.handle_records(body))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Err(Error::TaskFailed {
                    reason: format!("record handler panicked: {reason}"),
                })
            })
    }

    async fn handle_records(&self, body: &str) -> Result<RunStats> {
        let mut stats = RunStats::default();
        match parse_event_message(body)? {
            EventMessage::Test(t) => {
                tracing::info!(bucket = %t.bucket, "s3:TestEvent deleted");
                stats.test_events += 1;
            }
            EventMessage::Records(records) => {
                for r in &records {
                    stats.count(self.handler.handle(r).await?);
                }
            }
        }
        Ok(stats)
    }
}

/// One run loop's share of the [`Health`] of the worker (clones share it):
/// undone when the loop ends, however it ends (even cancelled).
struct LoopGuard<'a> {
    health: &'a Health,
    stopping: bool,
    in_flight: usize,
}

impl<'a> LoopGuard<'a> {
    fn start(health: &'a Health) -> Self {
        health.update(|h| h.loops_running += 1);
        Self {
            health,
            stopping: false,
            in_flight: 0,
        }
    }

    fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.health.update(|h| h.loops_stopping += 1);
        }
    }

    /// This loop has `now` messages in progress; `stats` happened.
    fn in_flight(&mut self, now: usize, stats: &RunStats) {
        let before = std::mem::replace(&mut self.in_flight, now);
        crate::metrics::record_stats(stats);
        crate::metrics::in_flight_delta(now as isize - before as isize);
        self.health.update(|h| {
            h.in_flight = (h.in_flight + now).saturating_sub(before);
            h.stats.add(stats);
        });
    }

    fn received_ok(&self) {
        self.health.update(|h| {
            h.receive_errors = 0;
            h.last_receive_ok = Some(Instant::now());
        });
    }

    fn receive_failed(&self) {
        self.health.update(|h| h.receive_errors += 1);
    }
}

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        let (stopping, in_flight) = (self.stopping, self.in_flight);
        crate::metrics::in_flight_delta(-(in_flight as isize));
        self.health.update(|h| {
            h.loops_running = h.loops_running.saturating_sub(1);
            if stopping {
                h.loops_stopping = h.loops_stopping.saturating_sub(1);
            }
            h.in_flight = h.in_flight.saturating_sub(in_flight);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap())
    }

    #[test]
    fn retry_delay_doubles_with_jitter_and_caps() {
        let c = config().with_retry_backoff(Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(c.retry_delay(1, 0), Duration::from_secs(2));
        assert_eq!(c.retry_delay(2, 0), Duration::from_secs(4));
        assert_eq!(c.retry_delay(3, 0), Duration::from_secs(8));
        assert_eq!(c.retry_delay(10, 0), Duration::from_secs(60));
        assert_eq!(c.retry_delay(u32::MAX, 0), Duration::from_secs(60));
        // Jitter takes off at most half.
        for salt in [1, 999, 12_345, u64::MAX] {
            let d = c.retry_delay(3, salt);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn heartbeat_follows_the_visibility_timeout() {
        assert_eq!(
            config().heartbeat_period(),
            Some((Duration::from_secs(10), Duration::from_secs(30)))
        );
        let c = config().with_receive(
            ReceiveOptions::default().with_visibility_timeout(Duration::from_secs(90)),
        );
        assert_eq!(
            c.heartbeat_period(),
            Some((Duration::from_secs(30), Duration::from_secs(90)))
        );
        assert_eq!(
            config().with_heartbeat(Heartbeat::Off).heartbeat_period(),
            None
        );
        let fixed = Heartbeat::Every {
            every: Duration::from_secs(5),
            extend_to: Duration::from_secs(15),
        };
        assert_eq!(
            config().with_heartbeat(fixed).heartbeat_period(),
            Some((Duration::from_secs(5), Duration::from_secs(15)))
        );
    }
}
