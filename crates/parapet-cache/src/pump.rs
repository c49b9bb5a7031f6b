//! The pump: a flight leader's response read into the store copy by a task of the cache's
//! own, not at the pace of the leader's client, so that a client that reads slowly, or not
//! at all, delays no waiter beyond the origin's own time.
//!
//! The frames go to the client through a hand-off queue that holds the same buffers as the
//! copy (reference-counted [`Bytes`]): no second copy while the copy is made, and the copy
//! alone is counted in flight. Once the copy is stored, whatever the client has not taken
//! yet is replaced by one slice of the stored body, and those bytes count in flight until
//! the client sends them on (or goes away): a client that does not read holds its share of
//! `max_in_flight_bytes`, so that many such clients cannot grow memory past the bounds
//! (with the bound reached, new answers stream through uncached at their clients' pace;
//! hits are unaffected). When the copy gives up (too big, the bound reached, trailers), the
//! rest of the body goes to the client as it is, read at the client's pace, the frames
//! already read counting in flight until taken.

use std::any::Any;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::capture_body::{Capture, Refusal};
use crate::shared::Shared;

/// The largest frame handed over from a stored copy.
const FRAME: usize = 64 << 10;

/// What the pump hands the client.
enum Piece<B> {
    Frame(Frame<Bytes>),
    /// The origin body's error (its `Error` type, boxed to keep `CaptureBody` free of
    /// bounds).
    Failed(Box<dyn Any + Send>),
    /// The copy gave up: the rest of the body, for the client to read itself.
    Rest(Pin<Box<B>>),
}

struct State<B> {
    pieces: VecDeque<Piece<B>>,
    /// Data bytes the client has taken.
    taken: usize,
    /// Those of the last frame taken: still counted in flight, since the client (hyper's
    /// write buffer) may hold them unsent until it asks for the next frame.
    last_taken: usize,
    /// Data bytes handed over.
    given: usize,
    /// Nothing more will come.
    done: bool,
    /// The client's end is gone.
    gone: bool,
    waker: Option<Waker>,
    /// Frames read for a copy that gave up, still counted in flight until taken.
    held: Option<Held>,
}

/// The queue between the pump and the client.
struct Handoff<B> {
    state: Mutex<State<B>>,
}

impl<B> Handoff<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands a piece over; `false` when the client is gone.
    fn give(&self, piece: Piece<B>) -> bool {
        let mut state = self.lock();
        if state.gone {
            return false;
        }
        if let Piece::Frame(frame) = &piece {
            state.given += frame.data_ref().map_or(0, Bytes::len);
        }
        state.pieces.push_back(piece);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        true
    }

    fn is_gone(&self) -> bool {
        self.lock().gone
    }

    /// The copy is stored as `body`: what the client has not taken comes from it now, and
    /// counts in flight until taken. The copy's count (`copy` bytes) becomes the client's in
    /// one step, so the total never shows both, nor neither.
    fn stored(&self, body: &Bytes, shared: &Arc<Shared>, copy: usize) {
        let mut state = self.lock();
        if state.gone {
            shared.release(copy);
            return;
        }
        state
            .pieces
            .retain(|piece| !matches!(piece, Piece::Frame(frame) if frame.is_data()));
        let rest = body
            .get(state.taken..)
            .filter(|rest| !rest.is_empty())
            .map(|rest| body.slice_ref(rest));
        // The unread rest, and the frame taken last (not yet sent on, see `last_taken`).
        let counted = rest.as_ref().map_or(0, Bytes::len) + state.last_taken;
        state.held = Some(Held::transfer(shared, copy, counted));
        if let Some(rest) = rest {
            state.given = state.taken + rest.len();
            // In frames of at most 64 KiB: a client that takes one and does not send it on
            // leaves the rest counted (one whole frame would leave the body uncounted in
            // the client's write buffer).
            for start in (0..rest.len()).step_by(FRAME) {
                let end = (start + FRAME).min(rest.len());
                state
                    .pieces
                    .push_back(Piece::Frame(Frame::data(rest.slice(start..end))));
            }
        }
    }

    /// The copy gave up: the frames handed over and not taken count in flight until they
    /// are.
    fn hold_unread(&self, shared: &Arc<Shared>) {
        let mut state = self.lock();
        if state.gone {
            return;
        }
        // (and the frame taken last, not yet sent on: see `last_taken`)
        let unread = state.given - state.taken + state.last_taken;
        state.held = Some(Held::count(shared, unread));
    }

    /// Nothing more will come (on every way out of the pump).
    fn close(&self) {
        let mut state = self.lock();
        state.done = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

/// Bytes counted in the layer's in-flight total while this lives.
struct Held {
    shared: Arc<Shared>,
    n: usize,
}

impl Held {
    fn count(shared: &Arc<Shared>, n: usize) -> Self {
        Self::transfer(shared, 0, n)
    }

    /// `n` bytes counted in place of `from` already counted, in one change of the total.
    fn transfer(shared: &Arc<Shared>, from: usize, n: usize) -> Self {
        if n >= from {
            shared.hold(n - from);
        } else {
            shared.release(from - n);
        }
        Self {
            shared: Arc::clone(shared),
            n,
        }
    }

    /// `n` of them sent on by the client: no longer counted.
    fn taken(&mut self, n: usize) {
        let n = n.min(self.n);
        self.n -= n;
        self.shared.release(n);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.release(self.n);
    }
}

/// Closes the hand-off however the pump ends (a panic or a cancelled task included).
struct Closing<B>(Arc<Handoff<B>>);

impl<B> Drop for Closing<B> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The client's end of a pumped body.
pub(crate) struct Pumped<B> {
    handoff: Arc<Handoff<B>>,
    rest: Option<Pin<Box<B>>>,
    hint: SizeHint,
}

impl<B> Pumped<B> {
    /// Starts the pump on `runtime`.
    pub(crate) fn start(runtime: &tokio::runtime::Handle, body: B, capture: Capture) -> Self
    where
        B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
    {
        let hint = body.size_hint();
        let handoff = Arc::new(Handoff {
            state: Mutex::new(State {
                pieces: VecDeque::new(),
                taken: 0,
                last_taken: 0,
                given: 0,
                done: false,
                gone: false,
                waker: None,
                held: None,
            }),
        });
        runtime.spawn(pump(body, Box::new(capture), Arc::clone(&handoff)));
        Self {
            handoff,
            rest: None,
            hint,
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool
    where
        B: Body,
    {
        self.rest.as_ref().is_some_and(|r| r.is_end_stream())
    }

    pub(crate) fn size_hint(&self) -> SizeHint
    where
        B: Body,
    {
        match &self.rest {
            Some(rest) => rest.size_hint(),
            None => self.hint,
        }
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes, Error: 'static>,
    {
        loop {
            if let Some(rest) = self.rest.as_mut() {
                return rest.as_mut().poll_frame(cx);
            }
            let mut state = self.handoff.lock();
            // Asking again means the frame taken last has gone on.
            let sent = std::mem::take(&mut state.last_taken);
            if let Some(held) = state.held.as_mut() {
                held.taken(sent);
            }
            let Some(piece) = state.pieces.pop_front() else {
                if state.done {
                    return Poll::Ready(None);
                }
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            };
            match piece {
                Piece::Frame(frame) => {
                    if let Some(data) = frame.data_ref() {
                        let n = data.len();
                        state.taken += n;
                        state.last_taken = n;
                        let mut hint = SizeHint::new();
                        hint.set_lower(self.hint.lower().saturating_sub(n as u64));
                        if let Some(upper) = self.hint.upper() {
                            hint.set_upper(upper.saturating_sub(n as u64));
                        }
                        self.hint = hint;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                // The pump sends its body's own error type: the downcast cannot fail.
                Piece::Failed(error) => {
                    return Poll::Ready(error.downcast::<B::Error>().ok().map(|e| Err(*e)));
                }
                Piece::Rest(body) => {
                    state.held = None;
                    drop(state);
                    self.rest = Some(body);
                }
            }
        }
    }
}

impl<B> Drop for Pumped<B> {
    fn drop(&mut self) {
        // Unread frames go now, not when the pump ends.
        let mut state = self.handoff.lock();
        state.gone = true;
        state.pieces.clear();
        state.held = None;
    }
}

/// Reads `body` into `capture`, handing each frame to the client, whether or not the
/// client reads (or is still there): the copy is for the waiters too. A read that waits
/// longer than `leader_timeout` with the client gone ends it (an origin that stalls keeps
/// no task alive for nobody).
async fn pump<B>(body: B, capture: Box<Capture>, handoff: Arc<Handoff<B>>)
where
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let _closing = Closing(Arc::clone(&handoff));
    // Declared after `_closing`, so dropped before it: the copy's count is gone before the
    // client can see the end of its body.
    let mut capture = capture;
    let shared = Arc::clone(&capture.shared);
    let mut body = Box::pin(body);
    loop {
        if shared.in_flight_full() {
            // Nothing more is read ahead of the client: it reads the rest at its pace.
            crate::metrics::in_flight_full();
            capture.give_up(Refusal::Full);
            handoff.hold_unread(&shared);
            handoff.give(Piece::Rest(body));
            return;
        }
        let frame = loop {
            match tokio::time::timeout(shared.leader_timeout, body.frame()).await {
                Ok(frame) => break frame,
                Err(_) if handoff.is_gone() => return capture.give_up(Refusal::Full),
                Err(_) => {}
            }
        };
        let frame = match frame {
            None => {
                let stored = capture.finish().await;
                let copy = std::mem::take(&mut capture.len);
                handoff.stored(&stored, &shared, copy);
                return;
            }
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                capture.give_up(Refusal::Unstorable);
                handoff.hold_unread(&shared);
                handoff.give(Piece::Failed(Box::new(error)));
                return;
            }
        };
        if let Err(why) = capture.accept(&frame) {
            // The client reads the rest itself, at its own pace.
            capture.give_up(why);
            handoff.hold_unread(&shared);
            if handoff.give(Piece::Frame(frame)) {
                handoff.give(Piece::Rest(body));
            }
            return;
        }
        if body.is_end_stream() {
            // A body that knows its length (hyper stops polling once it is sent) ends with
            // its last data frame: the client gets it from the stored copy, once stored.
            let stored = capture.finish().await;
            let copy = std::mem::take(&mut capture.len);
            handoff.stored(&stored, &shared, copy);
            return;
        }
        // A client gone makes this a no-op; the copy goes on.
        handoff.give(Piece::Frame(frame));
    }
}
