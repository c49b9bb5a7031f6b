//! The future a store returns: ready at once for in-process stores, boxed for remote ones.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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

    /// The same call with a deadline, as a call to hand on: an answer already known stays
    /// as it is (no allocation); one still to come fails with [`StoreError::Timeout`] past
    /// `deadline` (boxed once more). A caller that awaits at once uses
    /// [`await_within`](Self::await_within).
    pub fn within(self, deadline: Duration) -> Self
    where
        T: Send + 'static,
    {
        match self.0 {
            Kind::Boxed(call) => Self::boxed(Self(Kind::Boxed(call)).await_within(deadline)),
            ready => Self(ready),
        }
    }

    /// The answer within `deadline`, awaited in the caller's own future: the timer lives
    /// there, so nothing is allocated. An answer already known is returned untimed; one
    /// still to come fails with [`StoreError::Timeout`] past `deadline`.
    pub async fn await_within(self, deadline: Duration) -> Result<T, StoreError> {
        match self.now_or_later() {
            Ok(answer) => answer,
            Err(pending) => tokio::time::timeout(deadline, pending)
                .await
                .unwrap_or(Err(StoreError::Timeout(deadline))),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_bounds_pending_calls_only() {
        let ready = StoreCall::ready(Ok(7)).within(Duration::from_millis(1));
        assert_eq!(ready.now_or_later().unwrap().unwrap(), 7, "still ready");
        let slow = StoreCall::<u8>::boxed(std::future::pending()).within(Duration::from_millis(5));
        assert!(matches!(slow.await, Err(StoreError::Timeout(d)) if d == Duration::from_millis(5)));
        let ready = StoreCall::ready(Ok(7)).await_within(Duration::ZERO).await;
        assert_eq!(ready.unwrap(), 7, "a known answer is not timed");
        let slow = StoreCall::<u8>::boxed(std::future::pending());
        let late = slow.await_within(Duration::from_millis(5)).await;
        assert!(matches!(late, Err(StoreError::Timeout(d)) if d == Duration::from_millis(5)));
    }
}
