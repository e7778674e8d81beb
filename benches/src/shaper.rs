//! A TCP proxy that shapes each connection like a long-distance link:
//! a bandwidth cap per connection and direction, and a one-way delay.
//!
//! The model, per direction of every proxied connection:
//!
//! 1. The proxy reads what the sender wrote, at most [`CHUNK`] bytes at a
//!    time, and takes that many bytes from the connection's token bucket
//!    (`governor`, GCRA, refilled at [`LinkShape::rate_bytes_per_sec`],
//!    burst [`CHUNK`] or 5 ms of the rate if more), waiting as long as the bucket says: this is the
//!    serialization time of a link of that rate. When
//!    [`LinkShape::link_bytes_per_sec`] is set, the bytes also come out of
//!    one bucket shared by every connection in that direction (the link
//!    they all share).
//! 2. The chunk is stamped with `now + one_way_delay` and queued; a
//!    writer releases it to the receiver at that instant: this is the
//!    propagation delay. Delay and rate are independent: a connection
//!    that keeps sending gets the full rate, every byte late by the delay
//!    (the queue holds about rate × delay bytes).
//! 3. A new connection is connected upstream at once but forwards nothing
//!    for one round trip (2 × delay), as a TCP handshake costs before the
//!    first byte can be sent; the client's `connect` itself returns at
//!    once (loopback).
//! 4. End of stream is forwarded the same way (after the bytes before
//!    it, delayed), so half-closed connections work.
//!
//! What it does not model: TCP slow start and loss (a real WAN adds
//! both, which penalise new and lightly used connections further), and
//! the kernel socket buffers on either side of the proxy (a few MiB on
//! loopback) let a sender finish its writes early; only the receiver's
//! view is shaped.
//!
//! The proxy runs on its own Tokio runtime (two worker threads) so a
//! benchmark that blocks its own thread does not stall it.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Bytes read from a sender at a time (and the token buckets' burst):
/// 64 KiB, 2.5 ms of a 25 MiB/s link.
pub const CHUNK: usize = 64 * 1024;

/// How a [`Shaper`] shapes each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkShape {
    /// Bytes per second each connection may carry in each direction
    /// (at least 1).
    pub rate_bytes_per_sec: u32,
    /// Bytes per second all connections together may carry in each
    /// direction; `None`: no shared limit.
    pub link_bytes_per_sec: Option<u32>,
    /// Delay added to every byte in each direction (the round trip is
    /// twice this).
    pub one_way_delay: Duration,
}

/// Bytes forwarded so far, per direction.
#[derive(Debug, Default)]
pub struct ShaperStats {
    /// Client to server.
    pub up_bytes: AtomicU64,
    /// Server to client.
    pub down_bytes: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

/// A running shaping proxy; stops (and drops its connections) when
/// dropped.
#[derive(Debug)]
pub struct Shaper {
    addr: SocketAddr,
    stats: Arc<ShaperStats>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Shaper {
    /// Starts a proxy on `127.0.0.1` (a free port) that forwards every
    /// connection to `upstream`, shaped by `shape`.
    ///
    /// # Errors
    /// When the runtime cannot start or the port cannot be bound; an
    /// `InvalidInput` error for a rate of 0.
    pub fn start(upstream: SocketAddr, shape: LinkShape) -> std::io::Result<Self> {
        // Burst: a chunk, or 5 ms of the rate when that is more, so that
        // Tokio's 1 ms timer granularity does not cost rate (tokens earned
        // while a sleep overruns are kept, up to the burst).
        let quota = |rate: u32| {
            let per_byte = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let burst = (rate / 200).max(CHUNK as u32);
            Quota::with_period(per_byte.max(Duration::from_nanos(1)))
                .map(|q| q.allow_burst(NonZeroU32::new(burst).expect("burst > 0")))
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "rate must be > 0")
                })
        };
        let per_conn = quota(shape.rate_bytes_per_sec)?;
        let link = match shape.link_bytes_per_sec {
            Some(r) => {
                let q = quota(r)?;
                Some([
                    Arc::new(RateLimiter::direct(q)),
                    Arc::new(RateLimiter::direct(q)),
                ])
            }
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shaper")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ShaperStats::default());
        let st = stats.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                let link = link.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    // The handshake's round trip.
                    tokio::time::sleep(shape.one_way_delay * 2).await;
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let (up_link, down_link) = match &link {
                        Some([u, d]) => (Some(u.clone()), Some(d.clone())),
                        None => (None, None),
                    };
                    let up = pump(
                        cr,
                        sw,
                        RateLimiter::direct(per_conn),
                        up_link,
                        shape.one_way_delay,
                        st.clone(),
                        true,
                    );
                    let down = pump(
                        sr,
                        cw,
                        RateLimiter::direct(per_conn),
                        down_link,
                        shape.one_way_delay,
                        st,
                        false,
                    );
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(Self {
            addr,
            stats,
            runtime: Some(runtime),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes and connections so far.
    pub fn stats(&self) -> &ShaperStats {
        &self.stats
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Waits until `limiter` grants `n` bytes (`n` ≤ [`CHUNK`]).
async fn take(limiter: &DefaultDirectRateLimiter, n: usize) {
    let Some(n) = NonZeroU32::new(n as u32) else {
        return;
    };
    loop {
        match limiter.check_n(n) {
            Ok(Ok(())) => return,
            Ok(Err(not_until)) => {
                use governor::clock::Clock as _;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                tokio::time::sleep(wait).await;
            }
            // n ≤ CHUNK = the burst, so this cannot happen; do not spin.
            Err(_) => return,
        }
    }
}

/// One direction: read, pay the tokens, stamp, and let the writer
/// release each chunk `delay` later.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    own: DefaultDirectRateLimiter,
    link: Option<Arc<DefaultDirectRateLimiter>>,
    delay: Duration,
    stats: Arc<ShaperStats>,
    up: bool,
) {
    // Bounded well above rate × delay of any sane shape; a receiver that
    // stops reading pushes back on the sender through it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Option<Vec<u8>>)>(1024);
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            // An error ends the stream like an end of file.
            let n: usize = from.read(&mut buf).await.unwrap_or_default();
            if n == 0 {
                let _ = tx.send((Instant::now() + delay, None)).await;
                return;
            }
            buf.truncate(n);
            take(&own, n).await;
            if let Some(l) = &link {
                take(l, n).await;
            }
            if tx.send((Instant::now() + delay, Some(buf))).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                    let counter = if up {
                        &stats.up_bytes
                    } else {
                        &stats.down_bytes
                    };
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
