use super::*;
use crate::clock;

const LOCK: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn the_rules_in_memory() {
    let s = MemoryIdempotency::default();
    let (k, h) = (key("payments", "evt_1"), payload_hash(b"{}"));
    let t = 1_800_000_000_000;
    let acquired = |attempt| Ok(Claim::Acquired { attempt });
    assert_eq!(s.claim(&k, &h, t, LOCK, &[]).await, acquired(1));
    assert_eq!(
        s.claim(&k, &h, t + 1, LOCK, &[]).await,
        Ok(Claim::InProgress)
    );
    assert_eq!(
        s.claim(&k, "other", t + 1, LOCK, &[]).await,
        Ok(Claim::Conflict)
    );
    // The holder died: after its lock, the record can be claimed again: a second attempt.
    assert_eq!(s.claim(&k, &h, t + 30_001, LOCK, &[]).await, acquired(2));
    // Released after a failure: claimable at once, and the attempts count on.
    s.release(&k, &h, t + 30_002, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    // But not by another event under the same id: that is still a reused id.
    assert_eq!(
        s.claim(&k, "other", t + 30_002, LOCK, &[]).await,
        Ok(Claim::Conflict)
    );
    assert_eq!(s.claim(&k, &h, t + 30_003, LOCK, &[]).await, acquired(3));
    // A release with another payload's hash is not ours: the claim stands.
    s.release(&k, "other", t + 30_004, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    assert_eq!(
        s.claim(&k, &h, t + 30_005, LOCK, &[]).await,
        Ok(Claim::InProgress)
    );
    s.complete(&k, &h, 3, t + 30_006, DAY, &[]).await.unwrap();
    assert_eq!(
        s.claim(&k, &h, t + 40_000, LOCK, &[]).await,
        Ok(Claim::Completed)
    );
    // A completed record cannot be released.
    s.release(&k, &h, t + 40_001, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    assert_eq!(
        s.claim(&k, &h, t + 40_002, LOCK, &[]).await,
        Ok(Claim::Completed)
    );
    // Past its TTL a completed record is forgotten.
    assert_eq!(
        s.claim(&k, &h, t + 30_006 + 86_401_000, LOCK, &[]).await,
        acquired(4)
    );
    // Another record has its own count.
    let k2 = key("payments", "evt_2");
    assert_eq!(s.claim(&k2, &h, t, LOCK, &[]).await, acquired(1));
}

#[test]
fn the_payload_hash_is_sha256_hex() {
    assert_eq!(
        payload_hash(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_lock_ends_with_the_deadline_within_bounds() {
    let guard = Guard::new(MemoryIdempotency::default(), IdempotencyTimes::default());
    let now = 1_800_000_000_000;
    assert_eq!(guard.lock(now, None), Duration::from_secs(10));
    assert_eq!(guard.lock(now, Some(now + 5_000)), Duration::from_secs(5));
    // Past or about to pass: the minimum, so the holder can still finish.
    assert_eq!(guard.lock(now, Some(now - 5_000)), MIN_LOCK);
    // A deadline further than the guard's lock does not lengthen it.
    assert_eq!(
        guard.lock(now, Some(now + 3_600_000)),
        Duration::from_secs(10)
    );
    let tiny = Guard::new(
        MemoryIdempotency::default(),
        IdempotencyTimes {
            lock: Duration::ZERO,
            ttl: DAY,
        },
    );
    assert_eq!(tiny.lock(now, None), MIN_LOCK);
}

#[tokio::test]
async fn the_protocol_claim_act_complete_or_release() {
    let guard = Guard::new(MemoryIdempotency::default(), IdempotencyTimes::default());
    let (k, h) = (key("signups", "mail k1"), payload_hash(b"k1"));
    // First attempt fails: released, and the next claim is the second attempt.
    let Entry::Acquired(ticket) = guard
        .claim(k.clone(), h.clone(), None, Vec::new())
        .await
        .unwrap()
    else {
        panic!("the first claim acquires");
    };
    assert_eq!((ticket.attempt(), ticket.key()), (1, k.as_str()));
    // While it is held, others wait.
    assert!(matches!(
        guard.claim(k.clone(), h.clone(), None, Vec::new()).await,
        Ok(Entry::InProgress)
    ));
    ticket.release(Attempt::Keep).await;
    // Another payload under the key is refused, even released.
    assert!(matches!(
        guard
            .claim(k.clone(), payload_hash(b"k2"), None, Vec::new())
            .await,
        Ok(Entry::Conflict)
    ));
    let Entry::Acquired(ticket) = guard
        .claim(k.clone(), h.clone(), None, Vec::new())
        .await
        .unwrap()
    else {
        panic!("a released key is claimed again");
    };
    assert_eq!(ticket.attempt(), 2);
    ticket.complete().await;
    assert!(matches!(
        guard.claim(k, h, None, Vec::new()).await,
        Ok(Entry::Completed)
    ));
}

#[tokio::test]
async fn a_holder_that_dies_holds_the_key_until_its_deadline() {
    let store = MemoryIdempotency::default();
    let guard = Guard::new(&store, IdempotencyTimes::default());
    let (k, h) = (key("signups", "evt_1"), payload_hash(b"{}"));
    let deadline = clock::now_ms() + 2_000;
    let Entry::Acquired(ticket) = guard
        .claim(k.clone(), h.clone(), Some(deadline), Vec::new())
        .await
        .unwrap()
    else {
        panic!("the first claim acquires");
    };
    drop(ticket); // a crash: neither completed nor released
    assert_eq!(
        store.claim(&k, &h, deadline - 1, LOCK, &[]).await,
        Ok(Claim::InProgress)
    );
    assert_eq!(
        store.claim(&k, &h, deadline + 1_001, LOCK, &[]).await,
        Ok(Claim::Acquired { attempt: 2 })
    );
}

/// Times with a one-second lock: short enough for a test to see it lapse.
fn short() -> IdempotencyTimes {
    IdempotencyTimes {
        lock: MIN_LOCK,
        ttl: DAY,
    }
}

#[tokio::test]
async fn a_claimant_with_a_deadline_waits_for_a_dead_holders_claim() {
    let guard = Guard::new(MemoryIdempotency::default(), short());
    let (k, h) = (event_key("signups", "/web", "e1"), payload_hash(b"{}"));
    let Entry::Acquired(dead) = guard
        .claim(k.clone(), h.clone(), None, Vec::new())
        .await
        .unwrap()
    else {
        panic!("the first claim acquires");
    };
    drop(dead); // the holder dies between claim and completion
                // Without a deadline: in progress (the caller retries later).
    assert!(matches!(
        guard.claim(k.clone(), h.clone(), None, Vec::new()).await,
        Ok(Entry::InProgress)
    ));
    // With time to spare: it waits for the claim to lapse, and takes it as the next attempt.
    let started = std::time::Instant::now();
    let deadline = clock::now_ms() + 30_000;
    let Entry::Acquired(next) = guard
        .claim(k.clone(), h.clone(), Some(deadline), Vec::new())
        .await
        .unwrap()
    else {
        panic!("the waiting claimant acquires once the dead holder's lock lapsed");
    };
    assert_eq!(next.attempt(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // With no time to do the work after waiting: it does not wait.
    let short_deadline = clock::now_ms() + 1_000;
    assert!(matches!(
        guard.claim(k, h, Some(short_deadline), Vec::new()).await,
        Ok(Entry::InProgress)
    ));
    next.release(Attempt::Keep).await;
}

#[tokio::test]
async fn a_live_holder_keeps_its_claim_however_long_the_work_takes() {
    let store = MemoryIdempotency::default();
    let guard = Guard::new(&store, short());
    let (k, h) = (event_key("payments", "/bank", "p1"), payload_hash(b"{}"));
    let Entry::Acquired(ticket) = guard
        .claim(k.clone(), h.clone(), None, Vec::new())
        .await
        .unwrap()
    else {
        panic!("the first claim acquires");
    };
    // The work takes three locks; another claimant looks in the middle of it.
    let probe = async {
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        store.claim(&k, &h, clock::now_ms(), MIN_LOCK, &[]).await
    };
    let work = ticket.hold(tokio::time::sleep(Duration::from_millis(3_000)));
    let ((), seen) = tokio::join!(work, probe);
    assert_eq!(seen, Ok(Claim::InProgress), "the claim was kept alive");
    ticket.complete().await;
    assert!(matches!(
        guard.claim(k, h, None, Vec::new()).await,
        Ok(Entry::Completed)
    ));
}
