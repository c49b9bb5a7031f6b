//! The future a store returns: ready at once for in-process stores, boxed for remote ones.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::StoreError;

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// The result of a store operation, now or later.
///
/// What every parapet store trait method returns. An in-process store answers with
/// [`StoreCall::ready`] and costs no allocation; a remote one with [`StoreCall::boxed`], so
/// a middleware decides synchronously whenever it can.
pub struct StoreCall<T>(Kind<T>);

enum Kind<T> {
    Ready(Option<Result<T, StoreError>>),
    Boxed(Boxed<T>),
}

impl<T> StoreCall<T> {
    /// An answer that is already known.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self(Kind::Ready(Some(result)))
    }

    /// An answer still to come.
    pub fn boxed(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        Self(Kind::Boxed(Box::pin(future)))
    }

    /// The answer if it is already known, or the call to await.
    pub fn now_or_later(self) -> Result<Result<T, StoreError>, Self> {
        match self.0 {
            Kind::Ready(Some(result)) => Ok(result),
            other => Err(Self(other)),
        }
    }
}

// Nothing in a StoreCall is structurally pinned: the boxed future is pinned on the heap.
impl<T> Unpin for StoreCall<T> {}

impl<T> Future for StoreCall<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Kind::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => Poll::Ready(Err(StoreError::UnexpectedReply(
                    "store call polled after completion",
                ))),
            },
            Kind::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Kind::Ready(_) => "ready",
            Kind::Boxed(_) => "pending",
        };
        f.debug_tuple("StoreCall").field(&kind).finish()
    }
}
