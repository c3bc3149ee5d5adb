//! Goal: request/response: each request's reply reaches its own requester,
//! with many requests in flight from many threads; a request without a reply
//! times out and its late reply is acknowledged and dropped, not leaked;
//! replies are durable, so a reply can be collected after a restart. Replies
//! nobody will claim (duplicates, late, never collected, from an earlier
//! process) do not accumulate, pin the reply stream or stop the router.
//!
//! Method: responder threads answer with a payload derived from the request;
//! requester threads check every reply against their own request. Reply
//! streams are filled with replies nobody waits for, then must still answer
//! round trips, be trimmed by retention, and have nothing left pending.

pub mod common;

use common::{scratch_store, temp_store};
use spool::{
    request_headers, ConsumerConfig, Durability, Error, Message, Options, Store, StreamConfig,
    REPLY_CONSUMER, SEGMENT_BYTES_MIN,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers requests until it has answered `stop_after`, or `done` is set and
/// nothing is left.
fn respond_until(
    requests: spool::Stream,
    stop_after: usize,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let c = requests.consumer("responders").unwrap();
        let mut n = 0;
        while n < stop_after {
            let Some(d) = c.receive(Duration::from_millis(20)).unwrap() else {
                if done.load(Ordering::Acquire) {
                    break;
                }
                continue;
            };
            let mut answer = b"re: ".to_vec();
            answer.extend_from_slice(d.payload());
            d.reply(&answer).unwrap();
            d.ack().unwrap();
            n += 1;
        }
        n
    })
}

fn respond(requests: spool::Stream, stop_after: usize) -> std::thread::JoinHandle<usize> {
    respond_until(requests, stop_after, Arc::new(AtomicBool::new(false)))
}

#[test]
fn eight_requesters_two_responders_every_reply_matched() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    const THREADS: usize = 8;
    const PER: usize = 1000;
    let done = Arc::new(AtomicBool::new(false));
    let responders: Vec<_> = (0..2)
        .map(|_| respond_until(requests.clone(), usize::MAX, done.clone()))
        .collect();
    let t0 = Instant::now();
    let requesters: Vec<_> = (0..THREADS)
        .map(|t| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let body = format!("thread {t} request {i}");
                    let reply = requests
                        .request(
                            Message::new(body.as_bytes()),
                            "replies",
                            Duration::from_secs(30),
                        )
                        .unwrap();
                    assert_eq!(reply.payload(), format!("re: {body}").as_bytes());
                }
            })
        })
        .collect();
    for r in requesters {
        r.join().unwrap();
    }
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Release);
    let total: usize = responders.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, THREADS * PER, "every request answered once");
    let replies = store.stream("replies").unwrap();
    let router = replies.reply_stats().unwrap();
    assert_eq!(router.pending(), 0, "every reply acknowledged");
    eprintln!(
        "{} round trips in {:.2?}: {:.0}/s",
        THREADS * PER,
        elapsed,
        (THREADS * PER) as f64 / elapsed.as_secs_f64()
    );
}

#[test]
fn timeout_and_late_reply_dropped() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    let err = requests
        .request(
            Message::new(b"anyone?"),
            "replies",
            Duration::from_millis(50),
        )
        .unwrap_err();
    let Error::Timeout { correlation_id } = err else {
        panic!("expected a timeout, got {err:?}");
    };
    // The responder shows up late.
    respond(requests.clone(), 1).join().unwrap();
    let replies = store.stream("replies").unwrap();
    let late = replies.read(0).unwrap().unwrap();
    assert_eq!(
        late.header(request_headers::CORRELATION_ID),
        Some(correlation_id.as_bytes())
    );
    // The next request's wait reads past the late reply and drops it.
    let h = respond(requests.clone(), 1);
    let reply = requests
        .request(Message::new(b"second"), "replies", Duration::from_secs(30))
        .unwrap();
    assert_eq!(reply.payload(), b"re: second");
    h.join().unwrap();
    let router = replies.reply_stats().unwrap();
    assert_eq!(
        router.pending(),
        0,
        "the late reply was acknowledged, not leaked"
    );
}

#[test]
fn reply_collected_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let requests = store.stream("requests").unwrap();
        let id = requests
            .send_request(
                Message::new(b"report please").header("user", "ada"),
                "replies",
            )
            .unwrap();
        let d = requests
            .consumer("worker")
            .unwrap()
            .try_receive()
            .unwrap()
            .unwrap();
        assert_eq!(d.header(request_headers::REPLY_TO), Some(&b"replies"[..]));
        assert_eq!(d.header("user"), Some(&b"ada"[..]));
        d.reply(b"the report").unwrap();
        d.ack().unwrap();
        id
    };
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let reply = store
        .wait_reply("replies", &id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(reply.payload(), b"the report");
    // Collected once: it is acknowledged now.
    assert!(matches!(
        store.wait_reply("replies", &id, Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn replying_to_a_plain_message_is_an_error() {
    let (_dir, store) = scratch_store();
    let s = store.stream("s").unwrap();
    s.send(b"not a request").unwrap();
    let d = s.consumer("c").unwrap().try_receive().unwrap().unwrap();
    assert!(matches!(
        d.reply(b"x"),
        Err(Error::NotARequest { offset: 0 })
    ));
}

// Leaks: replies nobody will claim must not accumulate, pin the reply
// stream or stop the router.

#[test]
fn the_router_consumer_name_is_reserved() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    let replies = store.stream("replies").unwrap();
    let refused = |r: spool::Result<spool::Consumer>| matches!(r, Err(Error::InvalidName { .. }));
    assert!(refused(replies.consumer(REPLY_CONSUMER)));
    assert!(refused(
        replies.consumer_with(REPLY_CONSUMER, ConsumerConfig::default())
    ));
    // Also once the router has created it, and on any stream.
    let h = respond(requests.clone(), 1);
    requests
        .request(Message::new(b"ping"), "replies", Duration::from_secs(30))
        .unwrap();
    h.join().unwrap();
    assert!(refused(replies.consumer(REPLY_CONSUMER)));
    assert!(refused(requests.consumer(REPLY_CONSUMER)));
}

#[test]
fn wait_reply_with_a_zero_timeout_reads_what_arrived() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    let id = requests
        .send_request(Message::new(b"first"), "replies")
        .unwrap();
    respond(requests.clone(), 1).join().unwrap();
    let reply = store
        .wait_reply("replies", &id, Duration::ZERO)
        .expect("the reply is in the stream");
    assert_eq!(reply.payload(), b"re: first");
    // A zero-timeout look before the reply came does not give up on it.
    let id = requests
        .send_request(Message::new(b"second"), "replies")
        .unwrap();
    assert!(matches!(
        store.wait_reply("replies", &id, Duration::ZERO),
        Err(Error::Timeout { .. })
    ));
    respond(requests.clone(), 1).join().unwrap();
    let reply = store
        .wait_reply("replies", &id, Duration::from_secs(2))
        .expect("not dropped as late");
    assert_eq!(reply.payload(), b"re: second");
}

#[test]
fn waiting_again_after_a_timeout_gets_the_reply() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    let id = requests
        .send_request(Message::new(b"slow"), "replies")
        .unwrap();
    assert!(matches!(
        store.wait_reply("replies", &id, Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    respond(requests.clone(), 1).join().unwrap();
    // Nothing read the reply meanwhile: waiting again finds it.
    let reply = store
        .wait_reply("replies", &id, Duration::from_secs(2))
        .expect("wanted again");
    assert_eq!(reply.payload(), b"re: slow");
}

#[test]
fn four_requesters_with_durability_always() {
    let (_dir, store) = temp_store(Options::default());
    let requests = store.stream("requests").unwrap();
    const THREADS: usize = 4;
    const PER: usize = 100;
    let h = respond(requests.clone(), THREADS * PER);
    let requesters: Vec<_> = (0..THREADS)
        .map(|t| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let body = format!("thread {t} request {i}");
                    let reply = requests
                        .request(
                            Message::new(body.as_bytes()),
                            "replies",
                            Duration::from_secs(30),
                        )
                        .unwrap();
                    assert_eq!(reply.payload(), format!("re: {body}").as_bytes());
                }
            })
        })
        .collect();
    for r in requesters {
        r.join().unwrap();
    }
    h.join().unwrap();
    let replies = store.stream("replies").unwrap();
    assert_eq!(replies.reply_stats().unwrap().pending(), 0);
}

#[test]
fn duplicate_and_late_replies_do_not_pin_the_reply_stream() {
    let (_dir, store) = temp_store(
        Options::default()
            .durability(Durability::Never)
            .segment_bytes_max(SEGMENT_BYTES_MIN),
    );
    let requests = store.stream("requests").unwrap();
    let replies = store.stream("replies").unwrap();
    let worker = requests.consumer("responders").unwrap();
    // A request answered, given back, redelivered and answered again: both
    // replies are in the stream before the requester looks.
    let id = requests
        .send_request(Message::new(b"once"), "replies")
        .unwrap();
    let d = worker.try_receive().unwrap().unwrap();
    d.reply(b"first answer").unwrap();
    d.nack().unwrap();
    let d = worker.try_receive().unwrap().unwrap();
    assert_eq!(d.attempt(), 2);
    d.reply(b"second answer").unwrap();
    d.ack().unwrap();
    let reply = store
        .wait_reply("replies", &id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(reply.payload(), b"first answer");
    // A request answered twice, the second time after its requester took
    // the first.
    let responder = {
        let worker = worker.clone();
        std::thread::spawn(move || {
            let d = worker.receive(Duration::from_secs(30)).unwrap().unwrap();
            d.reply(b"answer").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            d.reply(b"answer again").unwrap();
            d.ack().unwrap();
        })
    };
    let reply = requests
        .request(Message::new(b"twice"), "replies", Duration::from_secs(30))
        .unwrap();
    assert_eq!(reply.payload(), b"answer");
    responder.join().unwrap();
    // A request that timed out, answered late.
    let id = requests
        .send_request(Message::new(b"slow"), "replies")
        .unwrap();
    assert!(store
        .wait_reply("replies", &id, Duration::from_millis(20))
        .is_err());
    let d = worker.try_receive().unwrap().unwrap();
    d.reply(b"too late").unwrap();
    d.ack().unwrap();
    let pinned = replies.stats().buckets[0].end_offset;
    assert_eq!(pinned, 5);
    // Many round trips later the reply stream is still answered, and
    // retention reclaims its old segments.
    const ROUND_TRIPS: usize = 3000;
    let h = respond(requests.clone(), ROUND_TRIPS);
    let pad = [b'x'; 64];
    let mut most_segments = 0;
    for i in 0..ROUND_TRIPS {
        let reply = requests
            .request(Message::new(&pad), "replies", Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("round trip {i}: {e}"));
        assert_eq!(reply.payload().len(), 4 + pad.len());
        most_segments = most_segments.max(replies.stats().buckets[0].segments);
    }
    h.join().unwrap();
    let b = &replies.stats().buckets[0];
    assert!(
        b.first_offset > pinned,
        "the reply stream was trimmed past the duplicates: {b:?}"
    );
    assert!(most_segments <= 3, "segments stay bounded: {most_segments}");
    assert_eq!(replies.reply_stats().unwrap().pending(), 0);
}

#[test]
fn unclaimed_replies_age_out() {
    let (_dir, store) = scratch_store();
    let requests = store.stream("requests").unwrap();
    // The reply stream's max_age bounds how long an unclaimed reply is kept.
    let age = Duration::from_millis(300);
    store
        .create_stream("replies", StreamConfig::default().max_age(age))
        .unwrap();
    let ids: Vec<String> = (0..10)
        .map(|i| {
            requests
                .send_request(
                    Message::new(format!("never collected {i}").as_bytes()),
                    "replies",
                )
                .unwrap()
        })
        .collect();
    respond(requests.clone(), ids.len()).join().unwrap();
    // A round trip reads past the unclaimed replies (and keeps them).
    let h = respond(requests.clone(), 1);
    requests
        .request(Message::new(b"ping"), "replies", Duration::from_secs(30))
        .unwrap();
    h.join().unwrap();
    std::thread::sleep(age + Duration::from_millis(100));
    // The next one drops them: they are too old.
    let h = respond(requests.clone(), 1);
    requests
        .request(Message::new(b"ping"), "replies", Duration::from_secs(30))
        .unwrap();
    h.join().unwrap();
    let replies = store.stream("replies").unwrap();
    assert_eq!(replies.reply_stats().unwrap().pending(), 0);
    for id in &ids {
        assert!(
            matches!(
                store.wait_reply("replies", id, Duration::from_millis(10)),
                Err(Error::Timeout { .. })
            ),
            "the unclaimed reply to {id} was dropped"
        );
    }
}

#[test]
fn unclaimed_replies_beyond_the_parking_limit_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::default().durability(Durability::Never);
    // More replies to requests of an earlier process than the router parks.
    const UNCLAIMED: usize = 100_001;
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let replies = store.stream("replies").unwrap();
        let ids: Vec<String> = (0..UNCLAIMED).map(|i| format!("{i:032x}")).collect();
        for chunk in ids.chunks(1000) {
            replies
                .send_batch(chunk.iter().map(|id| {
                    Message::new(b"nobody waits").header(request_headers::CORRELATION_ID, id)
                }))
                .unwrap();
        }
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), options()).unwrap();
    let requests = store.stream("requests").unwrap();
    let h = respond(requests.clone(), 2);
    for body in [&b"after a restart"[..], b"and again"] {
        let reply = requests
            .request(Message::new(body), "replies", Duration::from_secs(20))
            .expect("the router reads on");
        assert_eq!(&reply.payload()[4..], body);
    }
    h.join().unwrap();
    let parked = store
        .stream("replies")
        .unwrap()
        .reply_stats()
        .unwrap()
        .pending();
    assert!(parked <= 100_000, "at most 100,000 kept: {parked}");
}
