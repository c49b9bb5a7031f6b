//! How the examples serve HTTP/1.1: hyper's connection builder with the limits a server
//! facing clients needs, which `axum::serve` does not set.
//!
//! - **Header-read timeout** (10 s): a client that sends its request head slowly, or keeps
//!   an idle keep-alive connection open without sending the next one, is disconnected
//!   (hyper starts the timer when a connection waits for a request head).
//! - **Write stall timeout** (60 s, nginx's `send_timeout`): a client that stops reading
//!   its response (so that the server's writes make no progress for that long) is
//!   disconnected, and what its response held (a stored answer's share of the cache's
//!   in-flight bytes, say) is freed. A slow reader that keeps reading is not: every write
//!   that makes progress restarts the clock. (The kernel reports a socket writable again
//!   only once part of its send buffer has drained, up to a few MiB: a client reading
//!   slower than about a send buffer per timeout looks silent. Hence a whole minute.)
//! - **Connection limits** (1,024 in all, 128 per client address): past the first, new
//!   connections wait in the listen backlog until one closes, so a flood of connections
//!   cannot take all memory or file descriptors; past the second, a client's new
//!   connections are closed at once, so one client cannot hold them all. Behind a proxy,
//!   every connection comes from the proxy: lift the per-address limit there.
//! - **Graceful shutdown**: when `shutdown` resolves, no new connection is accepted and
//!   those open finish their requests in flight (at most 10 s).
//!
//! Each request carries its peer's address as `SocketAddr` and as axum's `ConnectInfo`, for
//! parapet's `PeerIp` and for handlers. A deadline per request, a slow body included, is a
//! layer's work: `examples/stack.rs` has tower-http's `TimeoutLayer` (30 s, then 408).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request head may take, counted from when the connection waits for one.
    pub header_read: Duration,
    /// How long a write may make no progress (the client reads nothing) before the
    /// connection is closed.
    pub write_stall: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one client address.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            write_stall: Duration::from_secs(60),
            max_connections: 1_024,
            max_connections_per_ip: 128,
        }
    }
}

/// Serves `service` on `listener` within `limits` until `shutdown` resolves.
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = PerIp::take(&per_ip, peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!("{} holds its most connections: closed", peer.ip());
            drop(stream);
            continue;
        };
        let service =
            tower::util::MapRequest::new(service.clone(), move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection = builder.serve_connection(
            TokioIo::new(WriteStall::new(stream, limits.write_stall)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection error: {error}");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s of shutdown: dropped");
    }
    Ok(())
}

/// One connection of a client address, counted until dropped.
struct PerIp {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerIp {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, most: usize) -> Option<Self> {
        let mut map = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(ip).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A connection whose writes fail with `TimedOut` once one has made no progress for
/// `limit`: hyper then closes the connection and drops the response it was sending.
struct WriteStall<T> {
    inner: T,
    limit: Duration,
    /// The clock of a pending write (or flush): one timer per connection, reset each time
    /// a write starts waiting.
    clock: Pin<Box<Sleep>>,
    /// Whether `clock` runs: a write is pending and none has made progress since.
    running: bool,
}

impl<T> WriteStall<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            clock: Box::pin(tokio::time::sleep(limit)),
            running: false,
        }
    }

    /// `poll` is the inner write's result: progress stops the clock, `Pending` starts or
    /// checks it. Once it has run out, every pending write fails until one makes progress
    /// (hyper closes the connection at the first failure).
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.running = false;
            return poll;
        }
        if !self.running {
            self.clock.as_mut().reset(Instant::now() + self.limit);
            self.running = true;
        }
        match self.clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of its response for the write stall timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
