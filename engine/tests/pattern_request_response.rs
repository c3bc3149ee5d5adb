//! Goal: request/response: each request's reply reaches its own requester,
//! with many requests in flight from many threads; a request without a reply
//! times out and its late reply is acknowledged and dropped, not leaked;
//! replies are durable, so a reply can be collected after a restart.
//!
//! Method: responder threads answer with a payload derived from the request;
//! requester threads check every reply against their own request.

pub mod common;

use common::scratch_store;
use spool::{request_headers, ConsumerConfig, Error, Message, Options, Store, REPLY_CONSUMER};
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
