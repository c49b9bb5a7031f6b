//! Decisions that arrive together go to Redis as one script call.
//!
//! Each `EVALSHA` costs Redis a fixed price (parsing the call, setting up the Lua state,
//! `TIME`, the reply) on top of the work of its decision; on a single-threaded Redis that
//! price bounds the fleet's throughput. A task per store takes every decision queued while
//! it was not running and sends them as one call of the batch script (`gcra.lua`), which
//! decides them in order, each all or nothing, at one `now`.
//!
//! There is no timer and no wait for company: a decision that finds the task idle goes out
//! as soon as the task runs (after one yield to the scheduler, which lets the requests
//! already running queue theirs first). Under load, the requests served while a call is
//! being built or is in flight make the next batch, so the batch size follows the load by
//! itself. On Redis Cluster every key of a call must be in one slot: a batch holds the
//! decisions of one subject (one hash tag), the hot keys that batching helps most.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parapet_core::{Clock, HashTag, RedisHandle, Script, StoreError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// Decisions sent in one call at most: keeps one script's run (Redis serves nothing else
/// meanwhile) and its reply short.
pub(super) const MAX_BATCH: usize = 64;

/// Decisions queued at most; past it, a decision is sent on its own.
const QUEUE: usize = 4096;

/// The batch script: `now.lua`, then `gcra.lua`.
pub(super) static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("gcra.lua"))));

/// One decision's part of a batch call.
pub(super) struct Decision {
    /// The subject's tag: on Cluster, only decisions of one tag share a call.
    pub(super) tag: HashTag,
    /// Allow entry, ban entry, then one key per policy.
    pub(super) keys: Vec<String>,
    /// The number of policies, the cost, then three numbers per policy (`gcra.lua`).
    pub(super) args: Vec<i64>,
}

/// A decision's reply: `gcra.lua`'s array for it, or why there is none.
pub(super) type Reply = Result<Vec<i64>, StoreError>;

struct Queued {
    decision: Decision,
    reply: oneshot::Sender<Reply>,
}

/// Where batches go: the store's Redis, and the clock of a differential test (`None`:
/// Redis `TIME`).
#[derive(Clone)]
pub(super) struct Target {
    pub(super) redis: RedisHandle,
    pub(super) clock: Option<Arc<dyn Clock>>,
}

impl Target {
    /// Decides `decisions` in one call, in order.
    pub(super) async fn send(&self, decisions: &[&Decision]) -> Result<Vec<Vec<i64>>, StoreError> {
        let keys = decisions.iter().map(|d| d.keys.len()).sum();
        let mut call = GCRA.call(keys);
        for decision in decisions {
            for key in &decision.keys {
                call.key(key.as_str());
            }
        }
        call.arg(decisions.len());
        match &self.clock {
            Some(clock) => call.arg(clock.now_micros()),
            None => call.arg(""),
        };
        for decision in decisions {
            for &arg in &decision.args {
                call.arg(arg);
            }
        }
        let replies: Vec<Vec<i64>> = self.redis.eval(&call).await?;
        if replies.len() == decisions.len() {
            Ok(replies)
        } else {
            Err(StoreError::UnexpectedReply(
                "rate-limit batch reply of the wrong length",
            ))
        }
    }
}

/// The queue of one store's decisions.
pub(super) struct Batcher {
    queue: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the task on the current Tokio runtime, or `None` outside one (decisions are
    /// then sent one call each).
    pub(super) fn start(target: Target) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        runtime.spawn(run(target, receiver));
        Some(Self { queue })
    }

    /// Queues `decision`, or gives it back when the queue is full or its task has ended
    /// (its runtime shut down): the caller then sends it on its own.
    pub(super) fn submit(&self, decision: Decision) -> Result<oneshot::Receiver<Reply>, Decision> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Queued { decision, reply }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(queued) | TrySendError::Closed(queued)) => Err(queued.decision),
        }
    }
}

/// The task: ends when the store (every sender of the queue) is dropped.
async fn run(target: Target, mut receiver: mpsc::Receiver<Queued>) {
    let cluster = target.redis.is_cluster();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        // Let the requests that are already running queue their decisions first.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        if cluster && batch.len() > 1 {
            let mut by_tag: HashMap<HashTag, Vec<Queued>> = HashMap::new();
            for queued in batch.drain(..) {
                by_tag.entry(queued.decision.tag).or_default().push(queued);
            }
            for group in by_tag.into_values() {
                tokio::spawn(answer(target.clone(), group));
            }
        } else {
            let group = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            tokio::spawn(answer(target.clone(), group));
        }
    }
}

/// Sends one batch and hands each decision its reply.
async fn answer(target: Target, batch: Vec<Queued>) {
    let decisions: Vec<&Decision> = batch.iter().map(|q| &q.decision).collect();
    let replies = target.send(&decisions).await;
    drop(decisions);
    // A request that gave up waiting dropped its receiver: nothing to tell it.
    match replies {
        Ok(replies) => {
            for (queued, reply) in batch.into_iter().zip(replies) {
                let _ = queued.reply.send(Ok(reply));
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
