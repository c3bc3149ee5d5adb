//! Messages NATS cannot carry as they are: headers that are not NATS
//! headers (encoded, and decoded by inbound), and payloads above the
//! server's `max_payload` (dead-lettered, or the bridge stops).

mod common;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use futures::StreamExt;
use spool::{dead_letter_headers, Message, Options, Store};
use spool_bridge::inbound::{self, InboundConfig};
use spool_bridge::outbound::{self, OutboundConfig};
use spool_bridge::BridgeError;
use std::time::Duration;

async fn on_subject(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<async_nats::jetstream::Message> {
    let s = js.get_stream(stream).await.expect("stream");
    let c = s
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut got = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), msgs.next()).await
    {
        got.push(m);
    }
    got
}

async fn forward_until_acked(
    store: &Store,
    js: &async_nats::jetstream::Context,
    config: &OutboundConfig,
    n: u64,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = {
        let (store, js, config) = (store.clone(), js.clone(), config.clone());
        tokio::spawn(async move {
            outbound::run(&store, &js, &config, async {
                let _ = rx.await;
            })
            .await
        })
    };
    let c = store
        .stream(&config.stream)
        .unwrap()
        .consumer(&config.consumer)
        .unwrap();
    for _ in 0..2000 {
        if c.stats().buckets[0].ack_floor >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(c.stats().buckets[0].ack_floor >= n, "all acked locally");
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
}

/// Headers a NATS header cannot carry (or that JetStream would act on)
/// go encoded, and come back from inbound byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nats_cannot_carry_round_trip() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "ORDERS", &["spool.orders"]).await;
    let headers: Vec<(&str, &[u8])> = vec![
        ("plain", b"value"),
        ("binary", &[0xff, 0xfe, 0, b'\r', b'\n', b':']),
        ("a:b c", b"colon and space in the name"),
        (
            "gr\u{fc}\u{df}e",
            "non-ASCII name and value \u{e9}".as_bytes(),
        ),
        // JetStream acts on these: as plain headers they would purge the
        // subject, or refuse the publish.
        ("Nats-Rollup", b"sub"),
        ("Nats-Expected-Last-Sequence", b"1"),
        ("padded", b"  spaces  "),
        ("empty", b""),
        ("plain", b"second value"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let orders = store.stream("orders").unwrap();
    for i in 0..3 {
        let mut m = Message::new(format!("order {i}").into_bytes().leak() as &[u8]);
        for (n, v) in &headers {
            m = m.header(n, *v);
        }
        orders.send_message(m).unwrap();
    }
    let config = OutboundConfig::new("orders", "spool.orders");
    forward_until_acked(&store, &js, &config, 3).await;
    let got = on_subject(&js, "ORDERS").await;
    assert_eq!(
        got.len(),
        3,
        "all three on the subject (no rollup purged them)"
    );
    for m in &got {
        let h = m.headers.as_ref().unwrap();
        assert!(
            h.get("Nats-Rollup").is_none(),
            "not a live JetStream header"
        );
        assert_eq!(
            h.get("plain").map(|v| v.as_str()),
            Some("value"),
            "plain as it is"
        );
    }

    // Back into Spool through inbound: the same names and values.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path(), Options::default()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = {
        let (store2, js) = (store2.clone(), js.clone());
        tokio::spawn(async move {
            inbound::run(
                &store2,
                &js,
                &InboundConfig::new("spool.orders", "back"),
                async {
                    let _ = rx.await;
                },
            )
            .await
        })
    };
    let back = store2.stream("back").unwrap();
    for _ in 0..1000 {
        if back.stats().messages() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
    assert_eq!(back.stats().messages(), 3);
    let mut want: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    want.sort();
    for i in 0..3u64 {
        let r = back.read_priority(0, i).unwrap().expect("record");
        assert_eq!(r.payload(), format!("order {i}").as_bytes());
        let mut user: Vec<(String, Vec<u8>)> = r
            .headers()
            .filter(|(n, _)| headers.iter().any(|(h, _)| h == n))
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        user.sort();
        assert_eq!(user, want, "message {i}: the same headers back");
    }
}

const SMALL_SERVER: &str = "max_payload: 8192\n";

fn fill(store: &Store) -> Vec<u8> {
    let orders = store.stream("orders").unwrap();
    let big = vec![b'x'; 16 * 1024];
    orders.send(b"order 0").unwrap();
    orders.send(&big).unwrap();
    orders.send(b"order 2").unwrap();
    big
}

/// A payload above the server's max_payload is dead-lettered locally,
/// with the reason, and the bridge goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_goes_to_the_dead_letter_stream() {
    let Some(server) = common::NatsServer::start_with_config(SMALL_SERVER) else {
        return;
    };
    let js = common::jetstream(&server, "ORDERS", &["spool.orders"]).await;
    assert_eq!(js.client().server_info().max_payload, 8192);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let big = fill(&store);
    let config = OutboundConfig {
        dead_letter: Some("orders.dead".to_string()),
        ..OutboundConfig::new("orders", "spool.orders")
    };
    forward_until_acked(&store, &js, &config, 3).await;
    let got: Vec<Vec<u8>> = on_subject(&js, "ORDERS")
        .await
        .iter()
        .map(|m| m.payload.to_vec())
        .collect();
    assert_eq!(got, [b"order 0".to_vec(), b"order 2".to_vec()]);
    let dead = store.stream("orders.dead").unwrap();
    assert_eq!(dead.stats().messages(), 1);
    let r = dead.read(0).unwrap().expect("a dead letter");
    assert_eq!(r.payload(), &big[..]);
    assert_eq!(r.header(dead_letter_headers::OFFSET), Some(&b"1"[..]));
    assert_eq!(r.header(dead_letter_headers::STREAM), Some(&b"orders"[..]));
    let reason = String::from_utf8_lossy(r.header(dead_letter_headers::REASON).unwrap());
    assert!(reason.contains("8192"), "{reason}");
}

/// Without a dead-letter stream it stops with an error naming the
/// message, after forwarding what came before it: neither a retry loop
/// nor a skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_without_a_dead_letter_stream_stops() {
    let Some(server) = common::NatsServer::start_with_config(SMALL_SERVER) else {
        return;
    };
    let js = common::jetstream(&server, "ORDERS", &["spool.orders"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    fill(&store);
    let config = OutboundConfig::new("orders", "spool.orders");
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        outbound::run(&store, &js, &config, std::future::pending()),
    )
    .await
    .expect("stops, does not retry forever");
    match r {
        Err(BridgeError::TooLarge {
            stream,
            priority,
            offset,
            ..
        }) => assert_eq!((stream.as_str(), priority, offset), ("orders", 0, 1)),
        other => panic!("want TooLarge, got {other:?}"),
    }
    let got: Vec<Vec<u8>> = on_subject(&js, "ORDERS")
        .await
        .iter()
        .map(|m| m.payload.to_vec())
        .collect();
    assert_eq!(got, [b"order 0".to_vec()], "order 2 not published past it");
    // Run again: the same stop (the message is not lost or skipped).
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        outbound::run(&store, &js, &config, std::future::pending()),
    )
    .await
    .expect("stops again");
    assert!(
        matches!(r, Err(BridgeError::TooLarge { offset: 1, .. })),
        "{r:?}"
    );
}
