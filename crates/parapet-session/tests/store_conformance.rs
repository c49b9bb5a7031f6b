//! One suite for every store: memory, standalone Redis and Redis Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Backend, advance, store_with};
use parapet_core::ManualClock;
use parapet_session::store::{Created, Incremented, NewSession, Revoke, Saved};
use parapet_session::{Changes, OverLimit, SessionKey, SessionRules, SessionStore};

fn rules() -> SessionRules {
    SessionRules::new(
        Duration::from_secs(60),
        Duration::from_secs(3600),
        Duration::from_secs(10),
        1024,
    )
}

fn key(group: u8, id: u8) -> SessionKey {
    SessionKey::new([group; 16], [id; 16])
}

fn sets(pairs: &[(&str, &str)]) -> Changes {
    let mut changes = Changes::default();
    for (k, v) in pairs {
        changes
            .set
            .push((k.to_string(), Bytes::from(v.to_string())));
    }
    changes
}

fn new_session(pairs: &[(&str, &str)], user: Option<&str>) -> NewSession {
    let mut session = NewSession::default();
    session.changes = sets(pairs);
    session.user = user.map(str::to_owned);
    session.ip = Some("192.0.2.7".into());
    session.user_agent = Some("agent/1".into());
    session
}

async fn fields(store: &dyn SessionStore, key: &SessionKey) -> Option<Vec<(String, String)>> {
    let loaded = store.load(key, &rules()).await.unwrap()?;
    let mut out: Vec<(String, String)> = loaded
        .fields
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    out.sort();
    Some(out)
}

fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

async fn create_then_load(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let k = key(1, 1);
    assert_eq!(store.load(&k, &rules()).await.unwrap(), None);
    let created = store.create(&k, &new_session(&[("a", "1")], Some("alice")), &rules());
    assert_eq!(created.await.unwrap(), Created::Done { evicted: 0 });
    let loaded = store.load(&k, &rules()).await.unwrap().unwrap();
    assert_eq!(loaded.key, k);
    assert_eq!(loaded.user.as_deref(), Some("alice"));
    assert_eq!(loaded.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(loaded.user_agent.as_deref(), Some("agent/1"));
    assert_eq!(fields(&*store, &k).await, pairs(&[("a", "1")]));
    // Taken keys are refused, nothing overwritten.
    let again = store.create(&k, &new_session(&[("b", "2")], None), &rules());
    assert_eq!(again.await.unwrap(), Created::Collision);
    assert_eq!(fields(&*store, &k).await, pairs(&[("a", "1")]));
}

async fn saves_touch_only_the_fields_they_change(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let k = key(2, 1);
    store
        .create(&k, &new_session(&[("a", "1"), ("b", "2")], None), &rules())
        .await
        .unwrap();
    // Two writers that each loaded {a, b} and change one field each: both changes stay.
    let first = store.save(&k, &sets(&[("a", "10")]), &rules());
    let second = store.save(&k, &sets(&[("c", "3")]), &rules());
    assert_eq!(first.await.unwrap(), Saved::Done);
    assert_eq!(second.await.unwrap(), Saved::Done);
    assert_eq!(
        fields(&*store, &k).await,
        pairs(&[("a", "10"), ("b", "2"), ("c", "3")])
    );
    let mut remove = Changes::default();
    remove.remove.push("b".into());
    assert_eq!(
        store.save(&k, &remove, &rules()).await.unwrap(),
        Saved::Done
    );
    assert_eq!(fields(&*store, &k).await, pairs(&[("a", "10"), ("c", "3")]));
    let mut clear = sets(&[("z", "9")]);
    clear.clear = true;
    assert_eq!(store.save(&k, &clear, &rules()).await.unwrap(), Saved::Done);
    assert_eq!(fields(&*store, &k).await, pairs(&[("z", "9")]));
    // A session that is not there is not created by a save.
    let ghost = key(2, 9);
    assert_eq!(
        store
            .save(&ghost, &sets(&[("a", "1")]), &rules())
            .await
            .unwrap(),
        Saved::Gone
    );
    assert_eq!(store.load(&ghost, &rules()).await.unwrap(), None);
}

async fn the_byte_limit_refuses_whole_writes(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let k = key(3, 1);
    let big = "x".repeat(600);
    store
        .create(&k, &new_session(&[("a", &big)], None), &rules())
        .await
        .unwrap();
    // 601 + 1 + 600 > 1024: nothing of it is written.
    let over = store.save(&k, &sets(&[("b", &big), ("c", "1")]), &rules());
    assert_eq!(over.await.unwrap(), Saved::TooLarge);
    assert_eq!(fields(&*store, &k).await.unwrap().len(), 1);
    // Replacing the big field with a small one frees its bytes.
    let replace = store.save(&k, &sets(&[("a", "1"), ("b", &big)]), &rules());
    assert_eq!(replace.await.unwrap(), Saved::Done);
    let too_big = store.create(
        &key(3, 2),
        &new_session(&[("a", &"y".repeat(2000))], None),
        &rules(),
    );
    assert_eq!(too_big.await.unwrap(), Created::TooLarge);
    assert_eq!(store.load(&key(3, 2), &rules()).await.unwrap(), None);
}

async fn incr_counts_atomically_and_refuses_non_integers(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let k = key(4, 1);
    store
        .create(&k, &new_session(&[("name", "\"bob\"")], None), &rules())
        .await
        .unwrap();
    let calls: Vec<_> = (0..50).map(|_| store.incr(&k, "n", 1, &rules())).collect();
    for call in calls {
        assert!(matches!(call.await.unwrap(), Incremented::Value(_)));
    }
    assert_eq!(
        store.incr(&k, "n", 0, &rules()).await.unwrap(),
        Incremented::Value(50)
    );
    assert_eq!(
        store.incr(&k, "n", -60, &rules()).await.unwrap(),
        Incremented::Value(-10)
    );
    assert_eq!(
        store.incr(&k, "name", 1, &rules()).await.unwrap(),
        Incremented::NotAnInteger
    );
    store
        .save(&k, &sets(&[("max", &i64::MAX.to_string())]), &rules())
        .await
        .unwrap();
    assert_eq!(
        store.incr(&k, "max", 1, &rules()).await.unwrap(),
        Incremented::NotAnInteger
    );
    assert_eq!(
        store.incr(&key(4, 2), "n", 1, &rules()).await.unwrap(),
        Incremented::Gone
    );
}

async fn rotation_moves_the_session_and_the_old_id_dies(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let (old, new) = (key(5, 1), key(5, 2));
    store
        .create(&old, &new_session(&[("a", "1")], Some("carol")), &rules())
        .await
        .unwrap();
    let moved = store.rotate(&old, &new, &sets(&[("b", "2")]), Duration::ZERO, &rules());
    assert_eq!(moved.await.unwrap(), Saved::Done);
    assert_eq!(
        store.load(&old, &rules()).await.unwrap(),
        None,
        "the old id is dead at once"
    );
    assert_eq!(
        fields(&*store, &new).await,
        pairs(&[("a", "1"), ("b", "2")])
    );
    let listed = store.list(new.group()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, new.handle());
    // Rotating a dead id does nothing.
    let gone = store.rotate(
        &old,
        &key(5, 3),
        &Changes::default(),
        Duration::ZERO,
        &rules(),
    );
    assert_eq!(gone.await.unwrap(), Saved::Gone);
}

async fn a_grace_window_keeps_the_old_id_pointing_at_the_new(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let (old, new) = (key(6, 1), key(6, 2));
    store
        .create(&old, &new_session(&[("a", "1")], Some("dave")), &rules())
        .await
        .unwrap();
    let grace = Duration::from_millis(400);
    store
        .rotate(&old, &new, &Changes::default(), grace, &rules())
        .await
        .unwrap();
    let through_old = store.load(&old, &rules()).await.unwrap().unwrap();
    assert_eq!(
        through_old.key, new,
        "a request in flight with the old id reaches the new record"
    );
    assert_eq!(fields(&*store, &new).await, pairs(&[("a", "1")]));
    // Writing through the old key itself is refused: writers follow the alias first.
    assert_eq!(
        store
            .save(&old, &sets(&[("x", "1")]), &rules())
            .await
            .unwrap(),
        Saved::Gone
    );
    advance(backend, &clock, grace + Duration::from_millis(100)).await;
    assert_eq!(
        store.load(&old, &rules()).await.unwrap(),
        None,
        "then it is dead"
    );
    assert!(store.load(&new, &rules()).await.unwrap().is_some());
}

async fn the_user_index_lists_and_revokes(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let group = store.user_group("erin");
    let keys: Vec<SessionKey> = (1..=4).map(|i| SessionKey::new(group, [i; 16])).collect();
    for k in &keys {
        store
            .create(k, &new_session(&[], Some("erin")), &rules())
            .await
            .unwrap();
    }
    // An anonymous session in another group is nobody's.
    store
        .create(&key(7, 1), &new_session(&[], None), &rules())
        .await
        .unwrap();
    let listed = store.list(&group).await.unwrap();
    let handles: Vec<String> = listed.iter().map(|s| s.handle.clone()).collect();
    assert_eq!(
        handles,
        keys.iter().map(SessionKey::handle).collect::<Vec<_>>()
    );
    assert_eq!(listed[0].ip.as_deref(), Some("192.0.2.7"));
    assert!(listed[0].expires > listed[0].created);
    assert_eq!(
        store
            .revoke(&group, Revoke::One(*keys[0].id()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.revoke(&group, Revoke::One([0xee; 16])).await.unwrap(),
        0
    );
    assert_eq!(store.load(&keys[0], &rules()).await.unwrap(), None);
    assert_eq!(
        store
            .revoke(&group, Revoke::AllExcept(*keys[1].id()))
            .await
            .unwrap(),
        2
    );
    assert!(store.load(&keys[1], &rules()).await.unwrap().is_some());
    assert_eq!(store.list(&group).await.unwrap().len(), 1);
    store.delete(&keys[1]).await.unwrap();
    assert!(store.list(&group).await.unwrap().is_empty());
    assert!(store.load(&key(7, 1), &rules()).await.unwrap().is_some());
}

async fn revoking_a_thousand_sessions_is_one_call(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let group = store.user_group("frank");
    let keys: Vec<SessionKey> = (0..1000u32)
        .map(|i| {
            let mut id = [0; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            SessionKey::new(group, id)
        })
        .collect();
    let creates: Vec<_> = keys
        .iter()
        .map(|k| store.create(k, &new_session(&[], Some("frank")), &rules()))
        .collect();
    for c in creates {
        c.await.unwrap();
    }
    assert_eq!(store.revoke(&group, Revoke::All).await.unwrap(), 1000);
    assert_eq!(store.load(&keys[500], &rules()).await.unwrap(), None);
    assert!(store.list(&group).await.unwrap().is_empty());
}

async fn the_session_limit_rejects_or_evicts(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let group = store.user_group("gina");
    let k = |i: u8| SessionKey::new(group, [i; 16]);
    let limited = |policy| {
        let mut s = new_session(&[], Some("gina"));
        s.limit = Some((2, policy));
        s
    };
    for i in 1..=2 {
        let created = store.create(&k(i), &limited(OverLimit::RejectNew), &rules());
        assert_eq!(created.await.unwrap(), Created::Done { evicted: 0 });
        advance(backend, &clock, Duration::from_millis(5)).await;
    }
    let third = store.create(&k(3), &limited(OverLimit::RejectNew), &rules());
    assert_eq!(third.await.unwrap(), Created::OverLimit);
    assert_eq!(
        store.load(&k(3), &rules()).await.unwrap(),
        None,
        "nothing written"
    );
    let evicting = store.create(&k(3), &limited(OverLimit::EvictOldest), &rules());
    assert_eq!(evicting.await.unwrap(), Created::Done { evicted: 1 });
    assert_eq!(
        store.load(&k(1), &rules()).await.unwrap(),
        None,
        "the oldest ended"
    );
    assert!(store.load(&k(2), &rules()).await.unwrap().is_some());
    assert!(store.load(&k(3), &rules()).await.unwrap().is_some());
    // A logged-out session frees its place.
    store.delete(&k(2)).await.unwrap();
    let fourth = store.create(&k(4), &limited(OverLimit::RejectNew), &rules());
    assert_eq!(fourth.await.unwrap(), Created::Done { evicted: 0 });
}

const SHORT_IDLE: Duration = Duration::from_millis(600);
const SHORT_ABSOLUTE: Duration = Duration::from_millis(1500);

fn short() -> SessionRules {
    SessionRules::new(SHORT_IDLE, SHORT_ABSOLUTE, Duration::from_millis(100), 1024)
}

async fn idle_and_absolute_expiry_are_enforced_by_the_store(backend: Backend) {
    // On Redis the store expires sessions on the server's own clock, and the test waits in
    // real time: a loaded machine may oversleep a step. A "still there" check means
    // something only if its step really was shorter than the expiry it checks; an attempt
    // whose steps overran that is run again. The "gone" checks only get surer with time.
    for attempt in 0..5 {
        if expiry_attempt(backend, 9 + attempt).await {
            return;
        }
    }
    panic!("five attempts overran their steps: this machine is too slow for this test");
}

/// One attempt of the test above; `false` when a step overran and proved nothing.
async fn expiry_attempt(backend: Backend, group: u8) -> bool {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let (idle, used) = (key(group, 1), key(group, 2));
    let rules = short();
    let created = Instant::now();
    store
        .create(&idle, &new_session(&[], Some("hal")), &rules)
        .await
        .unwrap();
    store
        .create(&used, &new_session(&[], Some("hal")), &rules)
        .await
        .unwrap();
    // Loads `used`, which should still be there: true if it is, false if it is gone after
    // a step longer than the session's idle time (since `last`) or its absolute time.
    let mut last = created;
    let mut still_there = async || {
        let started = Instant::now();
        let loaded = store.load(&used, &rules).await.unwrap();
        let real = backend != Backend::Memory;
        let overran = real && (last.elapsed() >= SHORT_IDLE || created.elapsed() >= SHORT_ABSOLUTE);
        last = started;
        assert!(loaded.is_some() || overran, "ended early");
        loaded.is_some()
    };
    // `used` is read every 300 ms (each read past touch_after moves its idle expiry);
    // `idle` is left alone and ends after 600 ms.
    for _ in 0..3 {
        advance(backend, &clock, Duration::from_millis(300)).await;
        if !still_there().await {
            return false;
        }
    }
    assert_eq!(
        store.load(&idle, &rules).await.unwrap(),
        None,
        "idle expiry"
    );
    assert_eq!(
        store.list(used.group()).await.unwrap().len(),
        1,
        "the index drops it too"
    );
    // Used all along, it still ends at the absolute expiry (1.5 s).
    advance(backend, &clock, Duration::from_millis(300)).await;
    if !still_there().await {
        return false;
    }
    advance(backend, &clock, Duration::from_millis(400)).await;
    assert_eq!(
        store.load(&used, &rules).await.unwrap(),
        None,
        "absolute expiry"
    );
    assert!(store.list(used.group()).await.unwrap().is_empty());
    true
}

async fn incr_past_the_byte_limit_changes_nothing(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let k = key(10, 1);
    // 64 + 1 + 880 bytes: one more field of 64 + 1 + 1 fits (1011 of 1024); one of 18
    // digits does not.
    store
        .create(&k, &new_session(&[("a", &"x".repeat(880))], None), &rules())
        .await
        .unwrap();
    assert_eq!(
        store.incr(&k, "n", 7, &rules()).await.unwrap(),
        Incremented::Value(7)
    );
    let big = 10_i64.pow(17);
    assert_eq!(
        store.incr(&k, "n", big, &rules()).await.unwrap(),
        Incremented::TooLarge
    );
    assert_eq!(
        store.incr(&k, "n", 0, &rules()).await.unwrap(),
        Incremented::Value(7),
        "rolled back exactly"
    );
    assert_eq!(
        store.incr(&k, "m", big, &rules()).await.unwrap(),
        Incremented::TooLarge
    );
    assert_eq!(
        fields(&*store, &k).await.unwrap().len(),
        2,
        "no field left behind"
    );
    // Values past 2^53 stay exact (no floating point on the way).
    let k2 = key(10, 2);
    store
        .create(&k2, &new_session(&[], None), &rules())
        .await
        .unwrap();
    let near = i64::MAX - 3;
    assert_eq!(
        store.incr(&k2, "n", near, &rules()).await.unwrap(),
        Incremented::Value(near)
    );
    assert_eq!(
        store.incr(&k2, "n", 1, &rules()).await.unwrap(),
        Incremented::Value(near + 1)
    );
}

async fn a_new_login_replacing_a_session_of_the_same_user_is_not_over_the_limit(backend: Backend) {
    let clock = ManualClock::new();
    let store = store_with(backend, &clock, &common::prefix()).await;
    let group = store.user_group("ike");
    let k = |i: u8| SessionKey::new(group, [i; 16]);
    let mut first = new_session(&[], Some("ike"));
    first.limit = Some((1, OverLimit::RejectNew));
    assert_eq!(
        store.create(&k(1), &first, &rules()).await.unwrap(),
        Created::Done { evicted: 0 }
    );
    let mut again = first.clone();
    again.replaces = Some(*k(1).id());
    assert_eq!(
        store.create(&k(2), &again, &rules()).await.unwrap(),
        Created::Done { evicted: 0 }
    );
    assert_eq!(
        store.load(&k(1), &rules()).await.unwrap(),
        None,
        "the replaced id ended"
    );
    assert!(store.load(&k(2), &rules()).await.unwrap().is_some());
    // Another device is still refused, and the session it would replace is kept.
    let mut other = first.clone();
    other.replaces = Some([0x77; 16]);
    assert_eq!(
        store.create(&k(3), &other, &rules()).await.unwrap(),
        Created::OverLimit
    );
    assert!(store.load(&k(2), &rules()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_full_memory_store_keeps_a_session_it_cannot_rotate() {
    use parapet_session::MemoryStore;
    // Two shards of one logged-in session each, both full (anonymous sessions have a
    // table of their own, which evicts instead).
    let store = MemoryStore::new().capacity(2);
    let mut live = Vec::new();
    for i in 1..=20 {
        if store
            .create(
                &key(11, i),
                &new_session(&[("a", "1")], Some("u")),
                &rules(),
            )
            .await
            .is_ok()
        {
            live.push(key(11, i));
        }
    }
    assert_eq!(
        live.len(),
        2,
        "the store holds its capacity and refuses the rest"
    );
    let mut current = live[0];
    let mut refused = 0;
    for i in 100..160 {
        let new = key(11, i);
        match store
            .rotate(
                &current,
                &new,
                &sets(&[("b", "2")]),
                Duration::ZERO,
                &rules(),
            )
            .await
        {
            Ok(saved) => {
                assert_eq!(saved, Saved::Done);
                current = new;
            }
            Err(_) => {
                refused += 1;
                let kept = fields(&store, &current).await;
                assert!(
                    kept.is_some(),
                    "a rotation refused for room keeps the session"
                );
            }
        }
    }
    assert!(refused > 0, "some new ids fell in the other, full shard");
    assert!(
        store.load(&live[1], &rules()).await.unwrap().is_some(),
        "nothing was evicted"
    );
}

on_every_store!(
    create_then_load,
    saves_touch_only_the_fields_they_change,
    the_byte_limit_refuses_whole_writes,
    incr_counts_atomically_and_refuses_non_integers,
    rotation_moves_the_session_and_the_old_id_dies,
    a_grace_window_keeps_the_old_id_pointing_at_the_new,
    the_user_index_lists_and_revokes,
    revoking_a_thousand_sessions_is_one_call,
    the_session_limit_rejects_or_evicts,
    idle_and_absolute_expiry_are_enforced_by_the_store,
    incr_past_the_byte_limit_changes_nothing,
    a_new_login_replacing_a_session_of_the_same_user_is_not_over_the_limit,
);
