//! Decisions that arrive together go to Redis as one script call.
//!
//! Each `EVALSHA` costs Redis a fixed price (parsing the call, setting up the Lua state,
//! `TIME`, the reply) on top of the work of its decisions; on a single-threaded Redis that
//! price bounds the fleet's throughput. A task per store takes the decisions queued while it
//! was busy and sends them as one call of the batch script (`gcra.lua`), which decides them
//! in order, each all or nothing, at one `now`.
//!
//! There is no timer and no wait for company: a decision that finds the task idle goes out
//! after one yield to the scheduler (which lets the requests already running queue theirs
//! first). On standalone Redis at most [`IN_FLIGHT`] calls are outstanding: while they are,
//! decisions queue and make the next batch, so the batch size follows the load by itself.
//! On Redis Cluster every key of a call must be in one slot: a call holds the decisions of
//! one subject (one hash tag), and calls for different subjects are not held back by each
//! other (each is bounded by its deadline). A decision waits in the queue within its own
//! deadline, like any store call, and one whose caller gave up is dropped unsent.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use parapet_core::{Clock, HashTag, RedisHandle, Script, SharedCall, StoreError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Decisions sent in one call at most: keeps one script's run (Redis serves nothing else
/// meanwhile) and its reply short.
const MAX_BATCH: usize = 64;

/// Calls outstanding at once on standalone Redis: enough to keep the connection busy while
/// the next batch fills.
const IN_FLIGHT: usize = 8;

/// Sliding-window cells one call adds at most (a sorted-set member each): a decision that
/// adds more is sent in a call of its own, so heavy decisions do not hold up the light ones
/// queued with them.
const MAX_CELLS: u64 = 4096;

/// Decisions queued at most; past it, a decision is sent on its own.
const QUEUE: usize = 4096;

/// The batch script: `now.lua`, then `gcra.lua`.
pub(super) static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("gcra.lua"))));

/// One decision's part of a batch call.
pub(super) struct Call {
    /// The subject's tag: on Cluster, only decisions of one tag share a call.
    pub(super) tag: HashTag,
    /// A differential test's clock when the decision was asked for (`None`: Redis `TIME`);
    /// only decisions of one `now` share a call.
    pub(super) now: Option<u64>,
    /// Allow entry, ban entry, then one key per policy.
    pub(super) keys: Vec<String>,
    /// The number of policies, the cost, then three numbers per policy (`gcra.lua`).
    pub(super) args: Vec<i64>,
    /// The sliding-window cells the decision adds if admitted: its cost per sliding policy.
    pub(super) cells: u64,
}

/// A decision's reply: `gcra.lua`'s array for it, or why there is none.
pub(super) type Reply = Result<Vec<i64>, StoreError>;

struct Queued {
    call: Call,
    reply: oneshot::Sender<Reply>,
    ticket: Arc<Ticket>,
}

/// What a queued decision's caller shares with the call that carries it, once the
/// batcher has taken it from the queue. Every caller of a failed call fails (with the
/// call's error, or its own timeout if that comes first), each failure
/// [`in_shared_call`](StoreError::in_shared_call), so whoever counts failures (the
/// limiter's circuit breaker) counts the call once. A decision still queued at its
/// deadline has no call: its timeout counts on its own.
#[derive(Default)]
pub(super) struct Ticket {
    call: OnceLock<SharedCall>,
}

/// A decision in the queue, seen from its caller.
pub(super) struct Waiting {
    answer: oneshot::Receiver<Reply>,
    ticket: Arc<Ticket>,
    until: Instant,
}

impl Waiting {
    /// The decision's reply, or why there is none, by `until` (`deadline` after it was
    /// asked for, its wait in the queue included).
    pub(super) async fn reply(self, deadline: Duration) -> Reply {
        let result = match tokio::time::timeout_at(self.until, self.answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(StoreError::UnexpectedReply(
                "rate-limit batch ended without a reply",
            )),
            Err(_) => Err(StoreError::Timeout(deadline)),
        };
        result.map_err(|error| match self.ticket.call.get() {
            Some(call) => error.in_shared_call(call),
            None => error,
        })
    }
}

/// Decides `calls` in one script call, in order (all of one `now`): each decision's reply,
/// or the call's failure. Calls of one form (the same keys and numbers: a hot key's) are
/// sent once, and each decision names its form.
pub(super) async fn send(redis: &RedisHandle, calls: &[&Call]) -> Result<Vec<Reply>, StoreError> {
    // Each form's first call, and each call's form (from 0).
    let mut forms: Vec<&Call> = Vec::new();
    let mut form_of = Vec::with_capacity(calls.len());
    for call in calls {
        let same = |f: &&Call| f.keys == call.keys && f.args == call.args;
        form_of.push(match forms.iter().position(same) {
            Some(f) => f,
            None => {
                forms.push(call);
                forms.len() - 1
            }
        });
    }
    let keys = forms.iter().map(|c| c.keys.len()).sum();
    let mut script = GCRA.call(keys);
    for form in &forms {
        for key in &form.keys {
            script.key(key.as_str());
        }
    }
    script.arg(calls.len());
    match calls.first().and_then(|c| c.now) {
        Some(now) => script.arg(now),
        None => script.arg(""),
    };
    script.arg(forms.len());
    for form in &forms {
        for &arg in &form.args {
            script.arg(arg);
        }
    }
    if forms.len() < calls.len() {
        for &f in &form_of {
            script.arg(f + 1);
        }
    }
    let replies: Vec<Vec<i64>> = redis.eval(&script).await?;
    if replies.len() != calls.len() {
        return Err(StoreError::UnexpectedReply(
            "rate-limit batch reply of the wrong length",
        ));
    }
    // A short reply that cannot be read fails its own decision, not the batch's others.
    Ok(replies
        .into_iter()
        .zip(calls)
        .map(|(reply, call)| match reply[..] {
            [code] => expand(code, &call.args),
            _ => Ok(reply),
        })
        .collect())
}

/// The whole reply of a decision that `gcra.lua` answered in short, from the decision's
/// numbers `args` (`[1, cost, algorithm, span, burst]`): the same integers the script's
/// long form would carry. One enforced GCRA policy (algorithm 0): `4 × (tat after the
/// decision − now) + status`, allowed or limited. One enforced sliding window (algorithm
/// 2), admitted with cells added: `4 × (cells in the window after it)`.
fn expand(code: i64, args: &[i64]) -> Result<Vec<i64>, StoreError> {
    let bad = || StoreError::UnexpectedReply("rate-limit short reply of the wrong shape");
    let &[1, cost, algorithm, span, burst] = args else {
        return Err(bad());
    };
    if code < 0 || span <= 0 || burst <= 0 || cost < 0 {
        return Err(bad());
    }
    let (value, status) = (code >> 2, code & 3);
    match (algorithm, status) {
        (0, 0 | 1) => {
            let (interval, tat) = (span, value);
            let limit = interval.checked_mul(burst).ok_or_else(bad)?;
            // Admission keeps tat - now within [0, limit]; a reply outside it is not the
            // script's.
            if tat > limit {
                return Err(bad());
            }
            let remaining = (limit - tat).div_euclid(interval);
            if status == 0 {
                return Ok(vec![0, 0, remaining, tat, tat - limit]);
            }
            let over = cost
                .checked_mul(interval)
                .and_then(|c| c.checked_add(tat))
                .ok_or_else(bad)?
                - limit;
            Ok(vec![1, over, remaining, tat, over])
        }
        // Admitted: the cells after it fit the burst, and the newest leaves a window from now.
        (2, 0) if cost > 0 && (cost..=burst).contains(&value) => {
            Ok(vec![0, 0, burst - value, span, 0])
        }
        _ => Err(bad()),
    }
}

/// The "now" a call is decided at: the test clock's, read when the decision is asked for.
pub(super) fn now_of(clock: Option<&Arc<dyn Clock>>) -> Option<u64> {
    clock.map(|clock| clock.now_micros())
}

/// The queue of one store's decisions.
pub(super) struct Batcher {
    queue: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the task on the current Tokio runtime, or `None` outside one (decisions are
    /// then sent one call each).
    pub(super) fn start(redis: RedisHandle) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        runtime.spawn(run(redis, receiver));
        Some(Self { queue })
    }

    /// Queues `call` for a caller that waits until `until`, or gives it back when the
    /// queue is full or its task has ended (its runtime shut down): the caller then sends
    /// it on its own.
    pub(super) fn submit(&self, call: Call, until: Instant) -> Result<Waiting, Call> {
        let (reply, answer) = oneshot::channel();
        let ticket = Arc::new(Ticket::default());
        let queued = Queued {
            call,
            reply,
            ticket: ticket.clone(),
        };
        match self.queue.try_send(queued) {
            Ok(()) => Ok(Waiting {
                answer,
                ticket,
                until,
            }),
            Err(TrySendError::Full(queued) | TrySendError::Closed(queued)) => Err(queued.call),
        }
    }
}

/// The task: ends when the store (every sender of the queue) is dropped.
async fn run(redis: RedisHandle, mut receiver: mpsc::Receiver<Queued>) {
    // On Cluster, calls for different subjects go to different nodes: none waits for another.
    let permits = (!redis.is_cluster()).then(|| Arc::new(Semaphore::new(IN_FLIGHT)));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // A decision that did not fit in the last call: it starts the next.
    let mut carried: Option<Queued> = None;
    loop {
        let first = match carried.take() {
            Some(queued) => queued,
            None => match receiver.recv().await {
                Some(queued) => queued,
                None => return,
            },
        };
        let permit = match &permits {
            // The semaphore is never closed.
            Some(permits) => permits.clone().acquire_owned().await.ok(),
            None => None,
        };
        let mut cells = first.call.cells;
        batch.push(first);
        // Let the requests that are already running queue their decisions first.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) if cells.saturating_add(queued.call.cells) > MAX_CELLS => {
                    carried = Some(queued);
                    break;
                }
                Ok(queued) => {
                    cells += queued.call.cells;
                    batch.push(queued);
                }
                Err(_) => break,
            }
        }
        let permit = permit.map(Arc::new);
        let groups: Vec<Vec<Queued>> = if permits.is_some() {
            vec![std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH))]
        } else {
            let mut by_tag: HashMap<HashTag, Vec<Queued>> = HashMap::new();
            for queued in batch.drain(..) {
                by_tag.entry(queued.call.tag).or_default().push(queued);
            }
            by_tag.into_values().collect()
        };
        for mut group in groups {
            // One call (under a test clock, one per `now`): from here on its callers share
            // its failure, counted once.
            let call = SharedCall::default();
            for queued in &group {
                let _ = queued.ticket.call.set(call.clone());
            }
            // A request that gave up (its deadline passed, or its future was dropped) is
            // not charged.
            group.retain(|queued| !queued.reply.is_closed());
            if group.is_empty() {
                continue;
            }
            let redis = redis.clone();
            let permit = permit.clone();
            tokio::spawn(async move {
                answer_in_order(&redis, group).await;
                drop(permit);
            });
        }
    }
}

/// Sends `group` as one call per run of decisions of one `now` (one run, but under a test
/// clock), one after the other, so they are decided in the order they were asked for.
async fn answer_in_order(redis: &RedisHandle, group: Vec<Queued>) {
    let mut rest = group.into_iter().peekable();
    while let Some(first) = rest.next() {
        let now = first.call.now;
        let mut run = vec![first];
        while let Some(next) = rest.next_if(|q| q.call.now == now) {
            run.push(next);
        }
        answer(redis, run).await;
    }
}

/// Sends one batch and hands each decision its reply.
async fn answer(redis: &RedisHandle, batch: Vec<Queued>) {
    let calls: Vec<&Call> = batch.iter().map(|q| &q.call).collect();
    let replies = send(redis, &calls).await;
    drop(calls);
    // A request that gave up waiting dropped its receiver: nothing to tell it.
    match replies {
        Ok(replies) => {
            for (queued, reply) in batch.into_iter().zip(replies) {
                let _ = queued.reply.send(reply);
            }
        }
        Err(error) => {
            let errors = error.shared(batch.len());
            for (queued, error) in batch.into_iter().zip(errors) {
                let _ = queued.reply.send(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn a_short_reply_expands_to_the_scripts_long_one() {
        // Interval 10 us, burst 5 (limit 50), cost 2.
        let args = [1, 2, 0, 10, 5];
        // Allowed, tat 20 us ahead of now: 3 cells left, reset in 20, 30 under the limit.
        assert_eq!(expand(4 * 20, &args).unwrap(), vec![0, 0, 3, 20, -30]);
        // Limited, tat 45 us ahead: over by 45 + 2 x 10 - 50 = 15.
        assert_eq!(expand(4 * 45 + 1, &args).unwrap(), vec![1, 15, 0, 45, 15]);
        // Anything else is an unexpected reply, never a guess.
        assert!(expand(-4, &args).is_err());
        assert!(expand(4 * 20 + 2, &args).is_err());
        assert!(expand(4 * 20, &[1, 2, 1, 10, 5]).is_err());
        assert!(expand(4 * 20, &[1, 2, 0, 0, 5]).is_err());
        // A time past the limit (interval x burst = 50) is no reply of the script's.
        assert!(expand(4 * 51, &args).is_err());
        // A sliding window of 1 s holding at most 5 cells, cost 2, admitted with 4 cells
        // in it after: 1 cell left, the newest leaves in 1 s, nothing over.
        let sliding = [1, 2, 2, 1_000_000, 5];
        assert_eq!(
            expand(4 * 4, &sliding).unwrap(),
            vec![0, 0, 1, 1_000_000, 0]
        );
        assert!(
            expand(4 * 6, &sliding).is_err(),
            "more cells than the burst"
        );
        assert!(expand(4, &sliding).is_err(), "fewer cells than it added");
        assert_eq!(
            expand(4 * 5, &sliding).unwrap(),
            vec![0, 0, 0, 1_000_000, 0]
        );
        assert!(
            expand(4 * 4 + 1, &sliding).is_err(),
            "only admissions are short"
        );
        assert!(
            expand(4 * 4, &[1, 0, 2, 1_000_000, 5]).is_err(),
            "no cells added"
        );
    }
}
