//! The run-time API of [`RateLimiter`]: read, reset, ban and allow-list keys.

use std::time::Duration;

use crate::key::NoKey;
use crate::store::RateLimitStore;
use crate::{Decision, PolicySet, RateLimitError, RateLimiter, RequestHead, Subject};

impl RateLimiter {
    /// Charges `cost` to `policies` for `subject` in the store and returns the decision.
    /// Store errors are returned, not handled by the `OnStoreError` policy; a cost above a
    /// policy's burst, which could never be admitted, is an error too.
    pub async fn check(
        &self,
        subject: &Subject,
        policies: &PolicySet,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        let (burst, policy) = policies.min_burst();
        if cost > burst {
            return Err(RateLimitError::CostExceedsBurst {
                cost,
                policy: policy.name().to_owned(),
            });
        }
        Ok(self.inner.store.check(subject, policies, cost).await?)
    }

    /// Gives back what an admitted request of `cost` was charged (see
    /// [`refund_when`](crate::RateLimitLayerBuilder::refund_when) to do it by response
    /// status).
    pub async fn refund(
        &self,
        subject: &Subject,
        policies: &PolicySet,
        cost: u32,
    ) -> Result<(), RateLimitError> {
        Ok(self.inner.store.refund(subject, policies, cost).await?)
    }

    /// The state of `subject` under `policies`, without charging anything.
    pub async fn state(
        &self,
        subject: &Subject,
        policies: &PolicySet,
    ) -> Result<Decision, RateLimitError> {
        self.check(subject, policies, 0).await
    }

    /// Forgets `subject`'s state under `policies`, here and, with Redis, on every instance
    /// (their deny caches are emptied by the store's announcement within milliseconds).
    pub async fn reset(
        &self,
        subject: &Subject,
        policies: &PolicySet,
    ) -> Result<(), RateLimitError> {
        self.inner.store.reset(subject, policies).await?;
        self.clear_deny_cache();
        Ok(())
    }

    /// Refuses every request of `subject` for `duration`, on every instance sharing the store
    /// (and on this one by its fallback limiter too, should the store become unavailable).
    pub async fn ban(&self, subject: &Subject, duration: Duration) -> Result<(), RateLimitError> {
        self.inner.store.ban(subject, duration).await?;
        if let Some(fallback) = &self.inner.fallback {
            let _ = fallback.ban(subject, duration).await;
        }
        Ok(())
    }

    /// Lifts a ban, on every instance sharing the store.
    pub async fn unban(&self, subject: &Subject) -> Result<(), RateLimitError> {
        self.inner.store.unban(subject).await?;
        if let Some(fallback) = &self.inner.fallback {
            let _ = fallback.unban(subject).await;
        }
        self.clear_deny_cache();
        Ok(())
    }

    /// Lets every request of `subject` through, uncounted, for `duration`, on every instance
    /// sharing the store. (For a fixed list, see the builder's `allow_key`.)
    pub async fn allow(&self, subject: &Subject, duration: Duration) -> Result<(), RateLimitError> {
        self.inner.store.allow(subject, duration).await?;
        self.clear_deny_cache();
        Ok(())
    }

    /// Takes `subject` off the shared allow list.
    pub async fn unallow(&self, subject: &Subject) -> Result<(), RateLimitError> {
        Ok(self.inner.store.unallow(subject).await?)
    }

    /// The subject an IP address is counted under by this limiter's key (folded with the
    /// key's IPv6 prefix): what to ban or allow for it. Keys that are not an IP alone fold
    /// with the default /56, as [`Subject::ip`].
    pub fn ip_subject(&self, ip: std::net::IpAddr) -> Subject {
        self.inner
            .key
            .ip_subject(ip)
            .unwrap_or_else(|| Subject::ip(ip))
    }

    /// The subject the layer's key extractor finds in a request head.
    pub fn subject(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        self.inner.key.extract(head)
    }

    /// True while this instance's deny cache is confirmed current with the store: the
    /// store's change announcements are heard (within their staleness bound, 500 ms). While
    /// false, refusals are not answered from the cache. Always true for in-process stores
    /// and for stores that announce nothing. A health check may report it.
    pub fn is_in_sync(&self) -> bool {
        self.inner
            .changes
            .as_ref()
            .is_none_or(parapet_core::FanOut::is_current)
    }

    pub(crate) fn clear_deny_cache(&self) {
        if let Some(cache) = &self.inner.deny_cache {
            cache.clear();
        }
    }
}
