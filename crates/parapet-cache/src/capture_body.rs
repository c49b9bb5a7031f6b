//! The body of a response that passes through the cache: streamed to the client untouched,
//! and, when the response may be stored, copied on the way up to a byte limit.
//!
//! A flight's leader's response is read by the cache itself: see [`crate::pump`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use parapet_core::StoreCall;
use pin_project_lite::pin_project;

use crate::StoredResponse;
use crate::flight::LeaderGuard;
use crate::pump::Pumped;
use crate::shared::Shared;

pin_project! {
    /// A response body on its way from the origin to the client.
    ///
    /// Uncacheable responses pass through with no copy and no buffering. A cacheable one is
    /// copied while it streams; the copy is stored when the body ends, and dropped (the
    /// stream goes on) once it passes the layer's `max_body_bytes` or the bytes in flight
    /// pass `max_in_flight_bytes`, on a body error, on trailers, or when the client goes
    /// away before the end (unless the cache reads the body itself for a flight's waiters).
    pub struct CaptureBody<B> {
        #[pin]
        source: Source<B>,
        capture: Option<Box<Capture>>,
    }
}

pin_project! {
    #[project = SourceProj]
    enum Source<B> {
        Origin { #[pin] body: B },
        Pumped { pumped: Pumped<B> },
    }
}

/// Why a copy stopped short.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over `max_body_bytes`, or trailers: the response itself cannot be stored.
    Unstorable,
    /// The in-flight bound was reached: nothing is said of the response.
    Full,
}

pub(crate) struct Capture {
    pub shared: Arc<Shared>,
    pub template: StoredResponse,
    pub chunks: Vec<Bytes>,
    /// The bytes copied, each counted in the layer's in-flight total until the capture
    /// ends (dropped).
    pub len: usize,
    pub guard: Option<LeaderGuard>,
    /// The store call under way once the body has ended: the end is reported to the client,
    /// and waiters are released, only when the response is stored (or failed to be), so
    /// that what they look up next is there.
    pub pending: Option<StoreCall<()>>,
    /// The response as stored, for the waiters.
    pub landing: Option<Arc<StoredResponse>>,
    /// The last data frame, held back while a remote store call finishes.
    pub held: Option<Bytes>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shared.release(self.len);
    }
}

impl Capture {
    /// Copies the frame's data if it fits under the body and in-flight bounds; when it
    /// does not (or the frame is trailers), the capture must give up for the reason given.
    pub(crate) fn accept(&mut self, frame: &Frame<Bytes>) -> Result<(), Refusal> {
        let Some(data) = frame.data_ref() else {
            return Err(Refusal::Unstorable);
        };
        let n = data.len();
        if self.len + n > self.shared.max_body_bytes {
            return Err(Refusal::Unstorable);
        }
        // Counted from now until the capture ends (see `Drop`).
        if !self.shared.reserve(n) {
            crate::metrics::in_flight_full();
            return Err(Refusal::Full);
        }
        self.len += n;
        self.chunks.push(data.clone());
        Ok(())
    }

    /// Starts storing the copy; `true` when done at once.
    fn start(&mut self) -> bool {
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    all.extend_from_slice(chunk);
                }
                all.freeze()
            }
        };
        self.chunks = Vec::new();
        self.template.body = body;
        let response = Arc::new(self.template.clone());
        // Waiters get the response as stored even if the store call fails: it is exactly
        // what a store hit would serve.
        let landing = Arc::clone(&response);
        let done = match self.shared.put_call(response) {
            None => true,
            Some(call) => match call.now_or_later() {
                Ok(result) => {
                    self.shared.settle_put(result);
                    true
                }
                Err(call) => {
                    self.pending = Some(call);
                    false
                }
            },
        };
        self.landing = Some(landing);
        if done {
            self.land();
        }
        done
    }

    /// Stores the copy and lands the flight, waiting for a remote store to answer; the
    /// body as stored.
    pub(crate) async fn finish(&mut self) -> Bytes {
        self.start();
        let body = self.template.body.clone();
        if let Some(call) = self.pending.take() {
            let result = call.await;
            self.settle(result);
        }
        body
    }

    /// Stores a response whose body is already over (a `204`, an empty body): nothing will
    /// poll it (hyper sends no body for a `204`), so the copy is stored now, a remote call
    /// finishing on its own.
    pub(crate) fn store_now(mut self) {
        if self.start() {
            return;
        }
        // Without a Tokio runtime to finish on, the call is dropped: its waiters are
        // released as for a response not stored.
        if let (Some(call), Ok(runtime)) =
            (self.pending.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let result = call.await;
                self.settle(result);
            });
        }
    }

    fn settle(&mut self, result: Result<(), parapet_core::StoreError>) {
        self.shared.settle_put(result);
        self.land();
    }

    fn land(&mut self) {
        if let (Some(guard), Some(response)) = (self.guard.take(), self.landing.take()) {
            guard.stored(response);
        }
    }

    /// Stops copying. An unstorable response marks its variant hit-for-miss; a copy cut
    /// short by the in-flight bound marks nothing (the next miss may store it).
    pub(crate) fn give_up(mut self: Box<Self>, why: Refusal) {
        if let Some(guard) = self.guard.take() {
            let marker = match why {
                Refusal::Unstorable => self.shared.hit_for_miss,
                Refusal::Full => std::time::Duration::ZERO,
            };
            guard.not_stored(self.shared.micros(), marker);
        }
    }
}

impl<B> CaptureBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self {
            source: Source::Origin { body },
            capture: None,
        }
    }

    pub(crate) fn capture(body: B, capture: Capture) -> Self {
        Self {
            source: Source::Origin { body },
            capture: Some(Box::new(capture)),
        }
    }

    /// Copies a flight leader's response with a task of the cache's own (the pump), not at
    /// the pace of the leader's client. Without a Tokio runtime, as [`capture`](Self::capture).
    pub(crate) fn pumped(body: B, capture: Capture) -> Self
    where
        B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Self {
                source: Source::Pumped {
                    pumped: Pumped::start(&runtime, body, capture),
                },
                capture: None,
            },
            Err(_) => Self::capture(body, capture),
        }
    }
}

/// Polls the store call under way; when it answers, releases the frame held back (or the
/// end of the body).
fn finish_store<D, E>(
    slot: &mut Option<Box<Capture>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<D>, E>>>
where
    D: From<Bytes>,
{
    let Some(capture) = slot.as_mut() else {
        return Poll::Ready(None);
    };
    let Some(call) = capture.pending.as_mut() else {
        return Poll::Ready(None);
    };
    let result = ready!(Pin::new(call).poll(cx));
    capture.pending = None;
    capture.settle(result);
    let held = capture.held.take();
    *slot = None;
    Poll::Ready(held.map(|data| Ok(Frame::data(D::from(data)))))
}

impl<B> Body for CaptureBody<B>
where
    B: Body<Data = Bytes, Error: 'static>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut body = match this.source.project() {
            SourceProj::Pumped { pumped } => return pumped.poll_frame(cx),
            SourceProj::Origin { body } => body,
        };
        if let Some(capture) = this.capture.as_mut()
            && capture.pending.is_some()
        {
            return finish_store(this.capture, cx);
        }
        let polled = body.as_mut().poll_frame(cx);
        let Some(capture) = this.capture.as_mut() else {
            return polled;
        };
        let ended = match &polled {
            Poll::Pending => false,
            Poll::Ready(Some(Ok(frame))) => match capture.accept(frame) {
                // A body that knows its length (hyper stops polling once it is sent) ends
                // with its last data frame.
                Ok(()) => body.is_end_stream(),
                // Too big, past the in-flight bound, or trailers (which the cache cannot
                // replay).
                Err(why) => {
                    if let Some(capture) = this.capture.take() {
                        capture.give_up(why);
                    }
                    false
                }
            },
            Poll::Ready(Some(Err(_))) => {
                if let Some(capture) = this.capture.take() {
                    capture.give_up(Refusal::Unstorable);
                }
                false
            }
            Poll::Ready(None) => true,
        };
        if !ended {
            return polled;
        }
        let Some(capture) = this.capture.as_mut() else {
            return polled;
        };
        if capture.start() {
            *this.capture = None;
            return polled;
        }
        // The store is remote: the last frame (or the end) is released once it answers.
        if let Poll::Ready(Some(Ok(frame))) = polled {
            capture.held = frame.into_data().ok();
        }
        finish_store(this.capture, cx)
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Pumped { pumped } => pumped.is_end_stream(),
            // Report the end only once the copy is stored (`poll_frame` returned `None`).
            Source::Origin { body } => self.capture.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Pumped { pumped } => pumped.size_hint(),
            Source::Origin { body } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for CaptureBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureBody")
            .field("capturing", &self.capture.is_some())
            .field("pumped", &matches!(self.source, Source::Pumped { .. }))
            .finish_non_exhaustive()
    }
}
