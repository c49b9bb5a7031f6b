//! The body of a response that passes through the cache: streamed to the client untouched,
//! and, when the response may be stored, copied on the way up to a byte limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::StoredResponse;
use crate::flight::LeaderGuard;
use crate::shared::Shared;

pin_project! {
    /// A response body on its way from the origin to the client.
    ///
    /// Uncacheable responses pass through with no copy and no buffering. A cacheable one is
    /// copied while it streams; the copy is stored when the body ends, and dropped (the
    /// stream goes on) once it passes the layer's `max_body_bytes`, on a body error, on
    /// trailers, or when the client goes away before the end.
    pub struct CaptureBody<B> {
        #[pin]
        body: B,
        capture: Option<Box<Capture>>,
    }
}

pub(crate) struct Capture {
    pub shared: Arc<Shared>,
    pub template: StoredResponse,
    pub chunks: Vec<Bytes>,
    pub len: usize,
    pub guard: Option<LeaderGuard>,
}

impl Capture {
    fn finish(mut self) {
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
        self.template.body = body;
        self.shared.put(Arc::new(self.template));
        if let Some(guard) = self.guard.take() {
            guard.stored();
        }
    }

    fn give_up(mut self) {
        if let Some(guard) = self.guard.take() {
            guard.not_stored(self.shared.micros(), self.shared.hit_for_miss);
        }
    }
}

impl<B> CaptureBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self {
            body,
            capture: None,
        }
    }

    pub(crate) fn capture(body: B, capture: Capture) -> Self {
        Self {
            body,
            capture: Some(Box::new(capture)),
        }
    }
}

impl<B> Body for CaptureBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        let Some(capture) = this.capture.as_mut() else {
            return polled;
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) if capture.len + data.len() <= capture.shared.max_body_bytes => {
                    capture.len += data.len();
                    capture.chunks.push(data.clone());
                }
                // Too big, or trailers (which the cache cannot replay).
                _ => {
                    if let Some(capture) = this.capture.take() {
                        capture.give_up();
                    }
                }
            },
            Poll::Ready(Some(Err(_))) => {
                if let Some(capture) = this.capture.take() {
                    capture.give_up();
                }
            }
            Poll::Ready(None) => {
                if let Some(capture) = this.capture.take() {
                    capture.finish();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Report the end only once the copy is stored (`poll_frame` returned `None`).
        self.capture.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> std::fmt::Debug for CaptureBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureBody")
            .field("capturing", &self.capture.is_some())
            .finish_non_exhaustive()
    }
}
