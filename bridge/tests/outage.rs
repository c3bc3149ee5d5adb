//! NATS away, longer than the duplicate window: the local store is the
//! outbox (sends go on), and afterwards every message is on the subject
//! once; the server restarted under a running bridge, both ways.

mod common;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use futures::StreamExt;
use spool::{Options, Store};
use spool_bridge::inbound::{self, InboundConfig};
use spool_bridge::outbound::{self, OutboundConfig};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_through_a_server_restart_and_an_outage_longer_than_the_window() {
    let Some(mut server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream_with(
        &server,
        async_nats::jetstream::stream::Config {
            name: "ORDERS".to_string(),
            subjects: vec!["spool.orders".to_string()],
            // Shortened, so that the outage below outlasts it.
            duplicate_window: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let orders = store.stream("orders").unwrap();
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
    let acked = |n: u64| consumer.stats().buckets[0].ack_floor >= n;
    let send = |range: std::ops::Range<u32>| {
        for i in range {
            orders.send(format!("order {i}").as_bytes()).unwrap();
        }
    };
    send(0..500);
    // Stopped while forwarding (some of the 500 may be in flight).
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.stop();
    // The outbox: sends go on at local speed while NATS is away.
    send(500..1000);
    tokio::time::sleep(Duration::from_millis(1500)).await; // > the window
    server.restart();
    for _ in 0..3000 {
        if acked(1000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(acked(1000), "every message forwarded after the outage");
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();

    let s = js.get_stream("ORDERS").await.unwrap();
    let c = s
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
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
    let want: Vec<String> = (0..1000).map(|i| format!("order {i}")).collect();
    assert_eq!(got.len(), want.len(), "no loss, no duplicate");
    assert_eq!(got, want, "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_through_a_server_restart() {
    let Some(mut server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "JOBS", &["jobs.>"]).await;
    for i in 0..300u32 {
        js.publish(format!("jobs.{}", i % 2), format!("job {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = {
        let (store, js) = (store.clone(), js.clone());
        tokio::spawn(async move {
            inbound::run(&store, &js, &InboundConfig::new("jobs.>", "jobs"), async {
                let _ = rx.await;
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.stop();
    // Away for several of the bridge's fetches.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart();
    for i in 300..600u32 {
        loop {
            let sent = async {
                js.publish(format!("jobs.{}", i % 2), format!("job {i}").into())
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            };
            if sent.await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let jobs = store.stream("jobs").unwrap();
    for _ in 0..3000 {
        if jobs.stats().messages() >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();
    assert_eq!(jobs.stats().messages(), 600, "no loss, no duplicate");
    for i in 0..600u64 {
        let r = jobs.read_priority(0, i).unwrap().expect("record");
        assert_eq!(r.payload(), format!("job {i}").as_bytes(), "in order");
    }
}
