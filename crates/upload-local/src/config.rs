//! [`LocalConfig`]: what the local mode listens on and how it processes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use upload_server::Authorizer;

/// Settings of [`crate::LocalMode::open`]. Build with
/// `LocalConfig::default()` and the `with_*` methods; new fields may be
/// added.
#[derive(Clone)]
#[non_exhaustive]
pub struct LocalConfig {
    /// Where the upload API (and [`LocalConfig::extra_routes`], e.g. the
    /// demo page) listens (default `127.0.0.1:8080`; port 0 picks a free
    /// one).
    pub listen: SocketAddr,
    /// Where the local upload endpoint (the S3 side: presigned PUT, POST,
    /// UploadPart and GET, path style `/{bucket}/{key}`) listens (default
    /// `127.0.0.1:8081`). Presigned URLs name this address, so keep it
    /// fixed across restarts for URLs handed out before one to stay valid.
    pub endpoint_listen: SocketAddr,
    /// clamd's address (`host:port`, or a Unix socket path); `None`, or a
    /// clamd that does not answer at start, means the in-memory scanner
    /// and a warning (see [`crate::choose_scanner`]).
    pub clamd: Option<String>,
    /// Whether the worker runs in this process (default true). Without it
    /// events wait in the queue file for the next start that runs one.
    pub run_worker: bool,
    /// Largest upload accepted, in bytes (default 100 MiB); also the
    /// largest request body the endpoint takes.
    pub max_bytes: u64,
    /// Uploads above this many bytes get a multipart session (default
    /// 16 MiB).
    pub multipart_threshold: u64,
    /// Preferred multipart part size in bytes: whole MiB, 5 MiB..=5 GiB
    /// (default 8 MiB).
    pub part_size: u64,
    /// Region the URLs are signed for and events name (default
    /// `us-east-1`).
    pub region: String,
    /// The queue's visibility timeout (default 30 s; the worker's
    /// heartbeat extends it while a message is processed).
    pub visibility_timeout: Duration,
    /// Deliveries of one message before it moves to the dead-letter queue
    /// (default 5, 1..=1000).
    pub max_receive_count: u32,
    /// Routes served beside the API on [`LocalConfig::listen`] (the demo
    /// pages); the API's routes win on a clash.
    pub extra_routes: Option<Router>,
    /// The app's authentication; `None` (the default) mounts
    /// [`crate::dev_auth::DevHeaderAuthorizer`], which **trusts the
    /// client's `x-owner` header: for local development only**, and is
    /// refused on addresses other than loopback ones.
    pub authorizer: Option<Arc<dyn Authorizer>>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            endpoint_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            clamd: None,
            run_worker: true,
            max_bytes: 100 * 1024 * 1024,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            region: "us-east-1".into(),
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
            extra_routes: None,
            authorizer: None,
        }
    }
}

impl std::fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConfig")
            .field("listen", &self.listen)
            .field("endpoint_listen", &self.endpoint_listen)
            .field("clamd", &self.clamd)
            .field("run_worker", &self.run_worker)
            .field("max_bytes", &self.max_bytes)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("region", &self.region)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receive_count", &self.max_receive_count)
            .field("extra_routes", &self.extra_routes.is_some())
            .field("dev_authorizer", &self.authorizer.is_none())
            .finish()
    }
}

impl LocalConfig {
    /// Sets [`LocalConfig::listen`].
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// Sets [`LocalConfig::endpoint_listen`].
    pub fn with_endpoint_listen(mut self, addr: SocketAddr) -> Self {
        self.endpoint_listen = addr;
        self
    }
    /// Sets [`LocalConfig::clamd`].
    pub fn with_clamd(mut self, address: Option<String>) -> Self {
        self.clamd = address;
        self
    }
    /// Sets [`LocalConfig::run_worker`].
    pub fn with_worker(mut self, run: bool) -> Self {
        self.run_worker = run;
        self
    }
    /// Sets [`LocalConfig::max_bytes`].
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
    /// Sets [`LocalConfig::multipart_threshold`].
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes;
        self
    }
    /// Sets [`LocalConfig::part_size`].
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }
    /// Sets [`LocalConfig::visibility_timeout`].
    pub fn with_visibility_timeout(mut self, t: Duration) -> Self {
        self.visibility_timeout = t;
        self
    }
    /// Sets [`LocalConfig::max_receive_count`].
    pub fn with_max_receive_count(mut self, n: u32) -> Self {
        self.max_receive_count = n;
        self
    }
    /// Sets [`LocalConfig::extra_routes`].
    pub fn with_extra_routes(mut self, routes: Router) -> Self {
        self.extra_routes = Some(routes);
        self
    }
    /// Sets [`LocalConfig::authorizer`].
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }
}
