//! Spool → JetStream against a real nats-server.

mod common;

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use spool::{Message, Options, Store};
use spool_bridge::outbound::{self, OutboundConfig};
use std::time::Duration;

/// Every message on the subject, in order: (payload, headers as strings).
async fn subject_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
    expect: usize,
) -> Vec<async_nats::jetstream::Message> {
    let s = js.get_stream(stream).await.expect("stream");
    let c = s
        .create_consumer(pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut out = Vec::new();
    let mut msgs = c.messages().await.expect("messages");
    while out.len() < expect {
        match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            _ => break,
        }
    }
    // Nothing more than expected.
    if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), msgs.next()).await {
        out.push(m);
    }
    out
}

async fn wait_acked(stream: &spool::Stream, consumer: &str, priority: usize, n: u64) {
    let c = stream.consumer(consumer).expect("consumer");
    for _ in 0..1000 {
        if c.stats().buckets[priority].ack_floor >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not all acked locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_once_with_headers_and_resumes() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "ORDERS", &["spool.orders"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = OutboundConfig::new("orders", "spool.orders");

    // A first run forwards 300 messages.
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let orders = store.stream("orders").unwrap();
        for i in 0..300u32 {
            let body = format!("order {i}");
            let n = i.to_string();
            orders
                .send_message(Message::new(&body).header("n", &n))
                .unwrap();
        }
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
        wait_acked(&orders, "bridge-out", 0, 300).await;
        tx.send(()).unwrap();
        assert_eq!(bridge.await.unwrap().unwrap(), 300);
    }

    // A second run over the same store: nothing again, then the new ones.
    // The local acks are undone first (a crash between publish ack and
    // local ack, for all of them): the position on the subject must stop
    // every one of them from going out twice.
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let orders = store.stream("orders").unwrap();
        orders.delete_consumer("bridge-out").unwrap();
        for i in 300..350u32 {
            let body = format!("order {i}");
            let n = i.to_string();
            orders
                .send_message(Message::new(&body).header("n", &n))
                .unwrap();
        }
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
        wait_acked(&orders, "bridge-out", 0, 350).await;
        tx.send(()).unwrap();
        assert_eq!(bridge.await.unwrap().unwrap(), 50);
    }

    let got = subject_messages(&js, "ORDERS", 350).await;
    assert_eq!(got.len(), 350, "each message once on the subject");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(&m.payload[..], format!("order {i}").as_bytes());
        let h = m.headers.as_ref().expect("headers");
        assert_eq!(h.get("n").map(|v| v.as_str()), Some(i.to_string().as_str()));
        assert_eq!(
            h.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(format!("spool/orders/0/{i}").as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_last_message_stops_the_bridge() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "X", &["spool.x"]).await;
    js.publish("spool.x", "not from a bridge".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.stream("x").unwrap().send(b"m").unwrap();
    let r = outbound::run(
        &store,
        &js,
        &OutboundConfig::new("x", "spool.x"),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(r, Err(spool_bridge::BridgeError::ForeignSubject { .. })),
        "{r:?}"
    );
}

/// A JetStream stream shared with another subject that someone else
/// writes to while the bridge forwards: the subject's stream sequences are
/// then not consecutive, so a pipelined publish's expected subject
/// sequence is a guess. A wrong guess must only cost a retry: a later
/// publish that happens to match the subject's last sequence while an
/// earlier one was refused would leave a hole the position then covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_stream_written_by_others_leaves_no_hole() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "SHARED", &["spool.orders", "noise.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let orders = store.stream("orders").unwrap();
    const N: u64 = 3000;
    let bodies: Vec<String> = (0..N).map(|i| format!("order {i}")).collect();
    orders
        .send_batch(bodies.iter().map(String::as_str))
        .unwrap();
    let stop_noise = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (js, stop) = (js.clone(), stop_noise.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ack = js.publish("noise.x", "noise".into()).await.unwrap();
                ack.await.unwrap();
                n += 1;
            }
            n
        })
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = {
        let (store, js) = (store.clone(), js.clone());
        tokio::spawn(async move {
            let config = OutboundConfig::new("orders", "spool.orders");
            outbound::run(&store, &js, &config, async {
                let _ = rx.await;
            })
            .await
        })
    };
    let consumer = orders.consumer("bridge-out").unwrap();
    for _ in 0..6000 {
        if consumer.stats().buckets[0].ack_floor >= N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_noise.store(true, std::sync::atomic::Ordering::Relaxed);
    let noise_sent = noise.await.unwrap();
    assert!(noise_sent > 0, "the other subject was written meanwhile");
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();

    let s = js.get_stream("SHARED").await.unwrap();
    let c = s
        .create_consumer(pull::Config {
            filter_subject: "spool.orders".to_string(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), msgs.next()).await
    {
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
    }
    assert_eq!(
        got.len(),
        N as usize,
        "no loss, no duplicate on the subject"
    );
    assert_eq!(got, bodies, "in order");
}
