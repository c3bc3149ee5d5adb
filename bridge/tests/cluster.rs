//! A 3-node JetStream cluster on loopback ports, an R3 stream, and its
//! leader killed while the outbound bridge forwards: every message once,
//! in order.

mod common;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use futures::StreamExt;
use spool::{Options, Store};
use spool_bridge::outbound::{self, OutboundConfig};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_survives_the_stream_leader_killed() {
    let Some(mut cluster) = common::Cluster::start(3) else {
        return;
    };
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cluster.addrs())
        .await
        .unwrap();
    // Short request and ack timeouts: a request to the dead leader fails
    // fast, and the bridge re-reads the subject from the next one.
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .ack_timeout(Duration::from_secs(1))
        .build(client);
    let started = std::time::Instant::now();
    // The cluster elects its metadata leader first: retry until it takes
    // the stream.
    let mut stream = None;
    for _ in 0..300 {
        match js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "ORDERS".to_string(),
                subjects: vec!["spool.orders".to_string()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut stream = stream.expect("an R3 stream within 30 s");
    eprintln!("R3 stream after {:?}", started.elapsed());

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let orders = store.stream("orders").unwrap();
    const N: u64 = 3000;
    for i in 0..N {
        orders.send(format!("order {i}").as_bytes()).unwrap();
    }
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
    let acked = || consumer.stats().buckets[0].ack_floor;
    for _ in 0..3000 {
        if acked() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kill the stream's leader mid-run.
    let leader = stream
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a leader");
    let i: usize = leader.trim_start_matches('n').parse().unwrap();
    cluster.kill(i);
    let killed_at = std::time::Instant::now();
    for _ in 0..6000 {
        if acked() >= N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(acked(), N, "every message forwarded with a node down");
    eprintln!(
        "forwarded the rest {:?} after the kill",
        killed_at.elapsed()
    );
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap();

    // A reader; creating it may wait out the election after the kill.
    let mut reader = None;
    for _ in 0..100 {
        match stream
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                num_replicas: 1,
                ..Default::default()
            })
            .await
        {
            Ok(c) => {
                reader = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let c = reader.expect("a reader within 10 s");
    eprintln!("reader at {:?}", started.elapsed());
    let mut msgs = c.messages().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), msgs.next()).await {
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
    }
    let want: Vec<String> = (0..N).map(|i| format!("order {i}")).collect();
    assert_eq!(got.len(), want.len(), "no loss, no duplicate");
    assert_eq!(got, want, "in order");
}
