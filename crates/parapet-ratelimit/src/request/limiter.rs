//! The shared engine behind the layer: the request path from head to verdict. The run-time
//! API (ban, reset, …) is in `limiter_api.rs`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use parapet_core::{
    Breaker, Clock, FailureLog, FanOut, OnStoreError, Permit, StoreCall, StoreError,
};

use crate::key::{KeyExtractor, NoKey};
use crate::request::deny_cache::DenyCache;
use crate::store::{MemoryStore, RateLimitStore};
use crate::{
    Decision, HeaderStyle, MissingKey, Outcome, PolicySet, PolicyState, Rejection, RejectionKind,
    RequestHead, Subject, headers, metrics,
};

pub(crate) type Resolver = Box<dyn Fn(&RequestHead<'_>) -> Option<PolicySet> + Send + Sync>;
pub(crate) type CostFn = Box<dyn Fn(&RequestHead<'_>) -> u32 + Send + Sync>;
pub(crate) type RejectionFn = Box<dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync>;
pub(crate) type RefundFn = Box<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// A configured rate limiter: what a [`RateLimitLayer`](crate::RateLimitLayer) runs, and
/// the handle for reading, resetting, banning and allow-listing keys at run time.
///
/// Cheap to clone (an `Arc`). Get it from [`RateLimitLayer::limiter`](crate::RateLimitLayer::limiter).
///
/// ```
/// # async fn run() -> Result<(), parapet_ratelimit::RateLimitError> {
/// use std::time::Duration;
/// use parapet_ratelimit::{RateLimitLayer, Quota, Subject, PolicySet, Policy, Outcome};
///
/// let minute = PolicySet::from(Policy::new("minute", Quota::per_minute(100))?);
/// let layer = RateLimitLayer::builder().policies(minute.clone()).build()?;
/// let limiter = layer.limiter();
/// let abuser = Subject::ip("192.0.2.66".parse().unwrap());
///
/// limiter.ban(&abuser, Duration::from_secs(600)).await?;
/// assert_eq!(limiter.state(&abuser, &minute).await?.outcome, Outcome::Banned);
/// limiter.unban(&abuser).await?;
/// assert_eq!(limiter.state(&abuser, &minute).await?.states[0].remaining, 100);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) fallback: Option<MemoryStore>,
    pub(crate) key: Box<dyn KeyExtractor>,
    pub(crate) resolver: Resolver,
    pub(crate) cost: Option<CostFn>,
    pub(crate) header_style: HeaderStyle,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) missing_key: MissingKey,
    pub(crate) allow_list: HashSet<Subject>,
    pub(crate) deny_cache: Option<Arc<DenyCache>>,
    /// The store's announcements of changes, which empty the deny cache; `None` for a
    /// store that announces nothing.
    pub(crate) changes: Option<FanOut>,
    pub(crate) breaker: Breaker,
    pub(crate) failures: FailureLog,
    /// Set once the misconfiguration error was logged: it is logged once per limiter.
    pub(crate) misconfiguration_logged: AtomicBool,
    pub(crate) rejection_response: Option<RejectionFn>,
    pub(crate) refund_when: Option<RefundFn>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// What to do with a request.
pub(crate) enum Verdict {
    /// Call the inner service; add these rate-limit fields to its response.
    Admit(Option<Charged>),
    /// Answer with this response.
    Refuse(Response<Bytes>),
}

/// What the response of an admitted request needs: the state to report, and what to give
/// back if its status asks for a refund.
pub(crate) struct Charged {
    pub(crate) set: PolicySet,
    pub(crate) states: Vec<PolicyState>,
    pub(crate) refund: Option<Refund>,
}

/// A charge the store made, to give back when the response's status says so.
pub(crate) struct Refund {
    limiter: RateLimiter,
    subject: Subject,
    cost: u32,
}

impl Refund {
    /// Gives the charge back if the limiter's `refund_when` holds for `status`. An
    /// in-process store does it now; a remote one in a background task, so the response
    /// does not wait for the extra round trip.
    pub(crate) fn apply(self, status: StatusCode, set: &PolicySet) {
        let inner = &*self.limiter.inner;
        if !inner.refund_when.as_ref().is_some_and(|when| when(status)) {
            return;
        }
        metrics::refund();
        match inner
            .store
            .refund(&self.subject, set, self.cost)
            .now_or_later()
        {
            Ok(result) => self.limiter.refund_failed(result),
            Err(call) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let limiter = self.limiter.clone();
                    runtime.spawn(async move { limiter.refund_failed(call.await) });
                }
            }
        }
    }
}

/// A store call under way.
pub(crate) struct Pending {
    pub(crate) call: StoreCall<Decision>,
    subject: Subject,
    set: PolicySet,
    cost: u32,
    /// When the remote call began (for the latency histogram), and the deny cache's epoch
    /// then.
    started: Option<(Instant, u64)>,
}

/// A remote store's refusal that may go to the deny cache.
struct Remember<'a> {
    subject: &'a Subject,
    cost: u32,
    /// The deny cache's epoch when the call was sent.
    epoch: u64,
}

pub(crate) enum Begin {
    Done(Verdict),
    Wait(Pending),
}

impl RateLimiter {
    pub(crate) fn new(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn header_style(&self) -> HeaderStyle {
        self.inner.header_style
    }

    fn now(&self) -> i64 {
        i64::try_from(self.inner.clock.now_micros()).unwrap_or(i64::MAX)
    }

    /// Everything that can be decided without waiting: resolver, key, allow list, cost,
    /// local deny cache, breaker, and in-process stores.
    pub(crate) fn begin(&self, head: &RequestHead<'_>) -> Begin {
        let inner = &*self.inner;
        let Some(set) = (inner.resolver)(head) else {
            return Begin::Done(Verdict::Admit(None));
        };
        let subject = match inner.key.extract(head) {
            Ok(subject) => subject,
            Err(no_key) => return Begin::Done(self.no_key(no_key)),
        };
        if !inner.allow_list.is_empty() && inner.allow_list.contains(&subject) {
            metrics::decision_without_policy(Outcome::AllowListed.label());
            return Begin::Done(Verdict::Admit(None));
        }
        let cost = inner.cost.as_ref().map_or(1, |cost| cost(head));
        if cost == 0 {
            return Begin::Done(Verdict::Admit(None));
        }
        let (min_burst, policy) = set.min_burst();
        if cost > min_burst {
            metrics::decision_without_policy("cost_exceeds_burst");
            let policy = policy.shared_name();
            return Begin::Done(Verdict::Refuse(self.refuse(
                RejectionKind::CostExceedsBurst,
                None,
                vec![policy],
                None,
            )));
        }
        let remote = inner.store.is_remote();
        if remote {
            // Only remote stores need this instance's clock: the deny cache and the breaker.
            let now = self.now();
            if let Some(cache) = &inner.deny_cache
                && self.is_in_sync()
                && let Some(decision) = cache.lookup(&subject, &set, cost, now)
            {
                metrics::local_denial();
                return Begin::Done(self.verdict(decision, &set, None, None));
            }
            if inner.breaker.permit(now) == Permit::Skip {
                return Begin::Done(self.store_failed("circuit_open", None, &subject, &set, cost));
            }
        }
        let epoch = inner.deny_cache.as_ref().map_or(0, |cache| cache.epoch());
        let started = remote.then(|| (Instant::now(), epoch));
        match inner.store.check(&subject, &set, cost).now_or_later() {
            Ok(result) => Begin::Done(self.decided(result, &subject, &set, cost, started)),
            Err(call) => Begin::Wait(Pending {
                call,
                subject,
                set,
                cost,
                started,
            }),
        }
    }

    fn no_key(&self, no_key: NoKey) -> Verdict {
        match (no_key, self.inner.missing_key) {
            (NoKey::Misconfigured(fix), _) => {
                if !self
                    .inner
                    .misconfiguration_logged
                    .swap(true, Ordering::Relaxed)
                {
                    tracing::error!("rate limiter cannot key requests: {fix}");
                }
                metrics::decision_without_policy("misconfigured");
                Verdict::Refuse(self.refuse(RejectionKind::Misconfigured, None, Vec::new(), None))
            }
            (NoKey::Absent, MissingKey::Skip) => {
                metrics::decision_without_policy("skipped");
                Verdict::Admit(None)
            }
            _ => {
                metrics::decision_without_policy("missing_key");
                Verdict::Refuse(self.refuse(RejectionKind::MissingKey, None, Vec::new(), None))
            }
        }
    }

    /// Turns a finished store call into a verdict.
    pub(crate) fn finish(
        &self,
        pending: &Pending,
        result: Result<Decision, StoreError>,
    ) -> Verdict {
        self.decided(
            result,
            &pending.subject,
            &pending.set,
            pending.cost,
            pending.started,
        )
    }

    fn decided(
        &self,
        result: Result<Decision, StoreError>,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
        started: Option<(Instant, u64)>,
    ) -> Verdict {
        // `started` is set exactly for remote stores.
        if let Some((started, _)) = started {
            metrics::store_latency(started.elapsed());
        }
        match result {
            Ok(decision) => {
                if started.is_some() {
                    self.inner.breaker.success();
                    // The fallback learns the store's bans, so slowing Redis lifts none.
                    if let Some(fallback) = &self.inner.fallback {
                        fallback.follow(subject, &decision);
                    }
                }
                // Only the remote store's own refusals may be remembered locally.
                let remember = started.map(|(_, epoch)| Remember {
                    subject,
                    cost,
                    epoch,
                });
                self.verdict(decision, set, remember, Some((subject, cost)))
            }
            Err(StoreError::CapacityExceeded(_)) => self.capacity_exceeded(),
            Err(error) => self.store_failed(error.kind(), Some(&error), subject, set, cost),
        }
    }

    fn capacity_exceeded(&self) -> Verdict {
        metrics::decision_without_policy("memory_full");
        Verdict::Refuse(self.refuse(
            RejectionKind::CapacityExceeded,
            Some(Duration::from_secs(1)),
            Vec::new(),
            None,
        ))
    }

    /// The verdict for a decision; `remember` is the (subject, cost) of a refusal that came
    /// from the remote store and may go to the local deny cache. A fallback store's refusal
    /// must not: once the remote store is back, it decides again.
    fn verdict(
        &self,
        decision: Decision,
        set: &PolicySet,
        remember: Option<Remember<'_>>,
        charged_by_store: Option<(&Subject, u32)>,
    ) -> Verdict {
        match decision.outcome {
            Outcome::Allowed => {
                for (policy, state) in set.policies().iter().zip(&decision.states) {
                    if policy.is_shadow() && state.retry_after.is_some() {
                        policy.counters().shadow_limited();
                        tracing::debug!(policy = policy.name(), "a shadow policy would refuse");
                    } else {
                        policy.counters().allowed();
                    }
                }
                let refund =
                    self.inner
                        .refund_when
                        .as_ref()
                        .and(charged_by_store)
                        .map(|(subject, cost)| Refund {
                            limiter: self.clone(),
                            subject: subject.clone(),
                            cost,
                        });
                let report = self.inner.header_style != HeaderStyle::None;
                Verdict::Admit((report || refund.is_some()).then(|| Charged {
                    set: set.clone(),
                    states: decision.states,
                    refund,
                }))
            }
            Outcome::AllowListed => {
                metrics::decision_without_policy(Outcome::AllowListed.label());
                Verdict::Admit(None)
            }
            Outcome::Limited | Outcome::Banned => {
                if let (Some(cache), Some(r)) = (&self.inner.deny_cache, remember) {
                    cache.insert(r.subject, set, r.cost, self.now(), &decision, r.epoch);
                }
                let retry_after = decision.retry_after.unwrap_or(Duration::from_secs(1));
                let banned = decision.outcome == Outcome::Banned;
                let violated: Vec<Arc<str>> = if banned {
                    for policy in set.policies() {
                        policy.counters().banned();
                    }
                    Vec::new()
                } else {
                    set.policies()
                        .iter()
                        .zip(&decision.states)
                        .filter(|(p, s)| s.retry_after.is_some() && !p.is_shadow())
                        .map(|(p, _)| {
                            p.counters().limited();
                            p.shared_name()
                        })
                        .collect()
                };
                let kind = if banned {
                    RejectionKind::Banned
                } else {
                    RejectionKind::Limited
                };
                Verdict::Refuse(self.refuse(
                    kind,
                    Some(retry_after),
                    violated,
                    Some((set, &decision.states)),
                ))
            }
        }
    }

    fn refund_failed(&self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            metrics::store_error(error.kind(), "refund_lost");
            self.inner
                .failures
                .failure(self.now(), error.kind(), "refund_lost", &error);
        }
    }

    fn store_failed(
        &self,
        kind: &'static str,
        error: Option<&StoreError>,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
    ) -> Verdict {
        let inner = &*self.inner;
        let action = inner.on_store_error.label();
        metrics::store_error(kind, action);
        if let Some(error) = error {
            let now = self.now();
            // One failed call counts once, however many decisions it carried.
            if error.claim() {
                inner.breaker.failure(now);
            }
            inner.failures.failure(now, kind, action, error);
        }
        match (inner.on_store_error, &inner.fallback) {
            (OnStoreError::Fallback, Some(fallback)) => match fallback.decide(subject, set, cost) {
                // The fallback's charges are not the store's: nothing to refund there.
                Ok(decision) => self.verdict(decision, set, None, None),
                Err(_) => self.capacity_exceeded(),
            },
            (OnStoreError::FailClosed, _) => {
                metrics::decision_without_policy("fail_closed");
                Verdict::Refuse(self.refuse(
                    RejectionKind::StoreUnavailable,
                    Some(Duration::from_secs(1)),
                    Vec::new(),
                    None,
                ))
            }
            _ => {
                metrics::decision_without_policy("fail_open");
                Verdict::Admit(None)
            }
        }
    }

    fn refuse(
        &self,
        kind: RejectionKind,
        retry_after: Option<Duration>,
        violated_policies: Vec<Arc<str>>,
        report: Option<(&PolicySet, &[PolicyState])>,
    ) -> Response<Bytes> {
        let rejection = Rejection {
            kind,
            retry_after,
            violated_policies,
        };
        let mut response = match &self.inner.rejection_response {
            Some(build) => build(&rejection),
            None => rejection.default_response(),
        };
        let fields = response.headers_mut();
        if let Some(retry_after) = retry_after {
            headers::insert_retry_after(fields, retry_after);
        }
        if let Some((set, states)) = report {
            headers::insert(fields, self.inner.header_style, set, states);
        }
        response
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("store", &self.inner.store)
            .field("header_style", &self.inner.header_style)
            .field("on_store_error", &self.inner.on_store_error)
            .field("missing_key", &self.inner.missing_key)
            .finish_non_exhaustive()
    }
}
