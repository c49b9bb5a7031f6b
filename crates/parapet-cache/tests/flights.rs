//! No client holds another: a flight's response is read by the cache, not at its leader's
//! pace; a leader that goes away hands its flight over; bytes in flight are bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use parapet_cache::CacheLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

const MIB: usize = 1 << 20;

/// `left` bytes in 64 KiB chunks, each chunk a fresh allocation (so that what is held
/// shows in the process's memory); then the end, or, with `then_stall`, nothing ever again.
struct Chunks {
    left: usize,
    then_stall: bool,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return if self.then_stall {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        let n = self.left.min(64 << 10);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }
}

/// An origin that answers every path with `size` cacheable bytes after `delay`, counting
/// its calls.
fn origin(
    size: usize,
    delay: Duration,
    calls: &Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Chunks>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    let calls = Arc::clone(calls);
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            let mut response = Response::new(Chunks {
                left: size,
                then_stall: false,
            });
            response
                .headers_mut()
                .insert("cache-control", "public, max-age=60".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    })
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://a.example{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn read_all<B: Body<Data = Bytes>>(body: B) -> usize
where
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
    }
    total
}

/// Waiters are served at the origin's pace while their leader's client reads nothing of
/// its 1 MiB answer. (Before: every waiter waited `leader_timeout`, 5 s, then went to the
/// origin alone.)
#[tokio::test(start_paused = true)]
async fn a_leader_that_does_not_read_delays_no_waiter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new().layer(origin(MIB, Duration::from_millis(100), &calls));
    let leader = svc.clone().oneshot(get("/big")).await.unwrap();
    // The leader holds its response and reads none of it.
    let started = Instant::now();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let response = svc.oneshot(get("/big")).await.unwrap();
                let len = read_all(response.into_body()).await;
                (len, started.elapsed())
            })
        })
        .collect();
    for waiter in waiters {
        let (len, waited) = waiter.await.unwrap();
        assert_eq!(len, MIB);
        assert!(
            waited < Duration::from_secs(1),
            "a waiter waited {waited:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one origin call");
    // The leader's client still gets every byte when it reads at last.
    assert_eq!(read_all(leader.into_body()).await, MIB);
}

/// The leader's client goes away while the origin is still working: one waiter takes the
/// flight over, the others wait for it. (Before: all ten went to the origin at once.)
#[tokio::test(start_paused = true)]
async fn a_leader_that_goes_away_hands_its_flight_to_a_waiter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new().layer(origin(1024, Duration::from_millis(200), &calls));
    let leader = tokio::spawn(svc.clone().oneshot(get("/slow")));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let response = svc.oneshot(get("/slow")).await.unwrap();
                read_all(response.into_body()).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), 1024);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the abandoned call and the one that took over"
    );
}

/// 64 clients each ask for a different 1 MiB cacheable answer and read nothing: the bytes
/// read from the origin and not yet stored or read stay under `max_in_flight_bytes`
/// (4 MiB), and the process grows by no more than that plus the store's bound (8 MiB), with
/// slack for the allocator; past the bound the answers stream through, uncached, whole.
/// (Before: nothing bounded them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_in_flight_are_bounded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::builder()
        .max_in_flight_bytes(4 * MIB)
        .memory_capacity(8 * MIB)
        .build()
        .unwrap();
    let cache = layer.handle();
    let svc = layer.layer(origin(MIB, Duration::ZERO, &calls));
    let before = common::rss_bytes();
    let mut held = Vec::new();
    for i in 0..64 {
        held.push(svc.clone().oneshot(get(&format!("/{i}"))).await.unwrap());
    }
    // Give the cache's readers time to read whatever they may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = cache.in_flight_bytes();
    let grown = common::rss_bytes().saturating_sub(before);
    // The check comes before each read: a frame (64 KiB here) read as the bound is reached,
    // on each of the two worker threads, may pass it.
    assert!(
        in_flight <= 4 * MIB + 2 * (64 << 10),
        "{in_flight} bytes in flight"
    );
    assert!(
        grown < 24 * MIB,
        "RSS grew {grown} bytes for 64 silent clients"
    );
    for response in held {
        assert_eq!(read_all(response.into_body()).await, MIB, "nothing lost");
    }
    assert_eq!(cache.in_flight_bytes(), 0, "every copy ended");
    let stored = cache.stats().stored;
    assert!(
        (1..64).contains(&stored),
        "some stored under the bound, the rest streamed: {stored}"
    );
}

/// An origin that stalls after its first frame, and a leader's client that goes away: the
/// cache's reader gives up after `leader_timeout` instead of waiting for nobody forever,
/// and what it held is released.
#[tokio::test(start_paused = true)]
async fn a_stalled_origin_keeps_no_reader_alive_for_nobody() {
    let layer = CacheLayer::builder()
        .leader_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let cache = layer.handle();
    let svc = layer.layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
        let mut response = Response::new(Chunks {
            left: 1000,
            then_stall: true,
        });
        response
            .headers_mut()
            .insert("cache-control", "public, max-age=60".parse().unwrap());
        Ok::<_, Infallible>(response)
    }));
    let response = svc.oneshot(get("/stalls")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cache.in_flight_bytes(),
        1000,
        "the copy holds the first frame"
    );
    drop(response);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cache.in_flight_bytes(), 0, "the reader gave up");
}

/// A client that reads nothing of a stored answer holds its unread bytes in flight until it
/// reads them and asks for more; they are released as it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_bytes_count_until_read() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new();
    let cache = layer.handle();
    let svc = layer.layer(origin(MIB, Duration::ZERO, &calls));
    let held = svc.clone().oneshot(get("/unread")).await.unwrap();
    // Stored (a second request is a hit), the first client having read nothing.
    let hit = svc.clone().oneshot(get("/unread")).await.unwrap();
    assert!(
        hit.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit")
    );
    // The copy's count passes to the client's unread bytes once the reader is done.
    let deadline = Instant::now() + Duration::from_secs(2);
    while cache.in_flight_bytes() != MIB && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache.in_flight_bytes(), MIB, "the unread answer counts");
    // A frame taken and not yet sent on (it may sit in a write buffer) still counts; the
    // frames are at most 64 KiB, so a client cannot take the whole answer in one.
    let mut body = std::pin::pin!(held.into_body());
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        first.len() <= 64 << 10,
        "{} bytes in one frame",
        first.len()
    );
    assert_eq!(cache.in_flight_bytes(), MIB);
    assert_eq!(first.len() + read_all(body).await, MIB);
    assert_eq!(cache.in_flight_bytes(), 0);
}

/// A bound under `max_body_bytes` would keep every large answer out of the store: refused.
#[test]
fn the_in_flight_bound_holds_at_least_one_body() {
    let built = CacheLayer::builder()
        .max_body_bytes(MIB)
        .max_in_flight_bytes(MIB - 1)
        .build();
    assert!(
        built
            .unwrap_err()
            .to_string()
            .contains("must be at least max_body_bytes")
    );
    assert!(
        CacheLayer::builder()
            .max_body_bytes(MIB)
            .max_in_flight_bytes(MIB)
            .build()
            .is_ok()
    );
}
