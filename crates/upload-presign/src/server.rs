//! Serving an axum [`Router`] with the timeouts a server that faces
//! clients needs: [`serve`] closes a connection whose request headers do
//! not arrive in time (a client that sends half a header is not held
//! forever) and fails a request whose body stops arriving.
//!
//! The body's idle timer is armed only while the body waits for its next
//! piece: a body that has already arrived with its headers, as a small
//! JSON body does, never touches the timer wheel (arming a tokio timer
//! wakes the runtime's driver, a system call per request).
//!
//! `axum::serve` has neither: it sets no timer on hyper's connections. The
//! [`LocalEndpoint`](crate::LocalEndpoint) is served this way by
//! [`LocalEndpoint::bind`](crate::LocalEndpoint::bind), and the example
//! API server (`presign-server`) too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::map_request_body::MapRequestBody;

/// Default [`ServerTimeouts::header_read`]: 30 s (hyper's default once a
/// timer is set).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ServerTimeouts::body_idle`]: 20 s, about when S3 answers 400
/// `RequestTimeout` to a body that stopped arriving.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection may wait on its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerTimeouts {
    /// Longest wait for a request's headers, from when the connection is
    /// ready to read them (a new or idle keep-alive connection) to their
    /// last byte; past it the connection is closed without an answer.
    pub header_read: Duration,
    /// Longest pause between two pieces of a request body; past it the
    /// body fails with [`BodyIdleTimeout`] (the local
    /// endpoint answers 400 `RequestTimeout`, as S3 does).
    pub body_idle: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: DEFAULT_HEADER_READ_TIMEOUT,
            body_idle: DEFAULT_BODY_IDLE_TIMEOUT,
        }
    }
}

impl ServerTimeouts {
    /// Sets [`ServerTimeouts::header_read`].
    pub fn with_header_read(mut self, timeout: Duration) -> Self {
        self.header_read = timeout;
        self
    }

    /// Sets [`ServerTimeouts::body_idle`].
    pub fn with_body_idle(mut self, timeout: Duration) -> Self {
        self.body_idle = timeout;
        self
    }
}

/// Serves `router` on `listener` over HTTP/1.1 with `timeouts` until
/// `shutdown` completes, then stops accepting, lets in-flight requests
/// finish and returns.
///
/// # Errors
/// None today: accept errors (a client that reset its connection, too many
/// open files) are logged and the loop goes on, as `axum::serve` does; the
/// `Result` leaves room for bind-time failures of future transports.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ServerTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let idle = timeouts.body_idle;
    let service = MapRequestBody::new(router, move |body| IdleTimeoutBody::new(body, idle));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Per-connection errors (reset before accept) are
                    // harmless; others (EMFILE) get a pause, not a spin.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Whether `e`, or an error it was caused by, is a body that stopped
/// arriving for longer than [`ServerTimeouts::body_idle`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyIdleTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error of a request body that waited longer than
/// [`ServerTimeouts::body_idle`] (the duration) for its next piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body stopped arriving for {0:?}")]
pub struct BodyIdleTimeout(pub Duration);

/// A request body that fails with [`BodyIdleTimeout`] once it has waited
/// longer than `idle` for its next piece. The timer is armed when a poll
/// finds nothing to read, and dropped when a piece arrives.
struct IdleTimeoutBody<B> {
    body: B,
    idle: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> IdleTimeoutBody<B> {
    fn new(body: B, idle: Duration) -> Self {
        Self {
            body,
            idle,
            sleep: None,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
