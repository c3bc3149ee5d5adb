//! JetStream → Spool against a real nats-server.

mod common;

use async_nats::HeaderMap;
use spool::{Options, Store};
use spool_bridge::inbound::{self, InboundConfig};
use std::time::Duration;

async fn publish(js: &async_nats::jetstream::Context, range: std::ops::Range<u32>) {
    for i in range {
        let mut h = HeaderMap::new();
        h.insert("n", i.to_string().as_str());
        js.publish_with_headers(format!("jobs.{}", i % 3), h, format!("job {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn run_until(store: &Store, js: &async_nats::jetstream::Context, n: u64) -> u64 {
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
    let jobs = store.stream("jobs").unwrap();
    for _ in 0..1000 {
        if jobs.stats().messages() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give a wrongly duplicating bridge the chance to show it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(()).unwrap();
    bridge.await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_once_in_order_and_resumes() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "JOBS", &["jobs.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    publish(&js, 0..200).await;
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert_eq!(run_until(&store, &js, 200).await, 200);
    }
    publish(&js, 200..260).await;
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        // A restart: only the new ones.
        assert_eq!(run_until(&store, &js, 260).await, 60);
        let jobs = store.stream("jobs").unwrap();
        assert_eq!(jobs.stats().messages(), 260);
        assert_eq!(inbound::last_appended(&jobs, "JOBS").unwrap(), 260);
        for i in 0..260u64 {
            let r = jobs.read_priority(0, i).unwrap().expect("record");
            assert_eq!(r.payload(), format!("job {i}").as_bytes());
            assert_eq!(r.header("n"), Some(i.to_string().as_bytes()));
            assert_eq!(
                r.header(inbound::SEQUENCE),
                Some((i + 1).to_string().as_bytes())
            );
            assert_eq!(
                r.header(inbound::SUBJECT),
                Some(format!("jobs.{}", i % 3).as_bytes())
            );
        }
    }
}

/// A bridge that died after appending, before acking to NATS: the messages
/// it appended are not appended again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_but_unacked_messages_are_not_appended_again() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "JOBS", &["jobs.>"]).await;
    publish(&js, 0..10).await;
    // An earlier consumer that received everything and acked nothing.
    let s = js.get_stream("JOBS").await.unwrap();
    let _ = s
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("spool-bridge-in".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let jobs = store.stream("jobs").unwrap();
    for seq in 1..=6u64 {
        let body = format!("job {}", seq - 1);
        let seq = seq.to_string();
        jobs.send_message(
            spool::Message::new(&body)
                .header(inbound::STREAM, "JOBS")
                .header(inbound::SEQUENCE, &seq),
        )
        .unwrap();
    }
    assert_eq!(inbound::last_appended(&jobs, "JOBS").unwrap(), 6);
    assert_eq!(run_until(&store, &js, 10).await, 4);
    assert_eq!(jobs.stats().messages(), 10);
    for i in 0..10u64 {
        let r = jobs.read_priority(0, i).unwrap().expect("record");
        assert_eq!(r.payload(), format!("job {i}").as_bytes());
        assert_eq!(
            r.header(inbound::SEQUENCE),
            Some((i + 1).to_string().as_bytes())
        );
    }
}

/// A redelivery at or below the last appended sequence, while the bridge
/// runs (its NATS acks lost: JetStream sends the batch again once the ack
/// wait has passed), is acked without appending. The Spool stream has no
/// deduplication window here, so only the bridge's sequence check stands
/// between a redelivery and a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_at_or_below_the_last_sequence_is_not_appended() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "JOBS", &["jobs.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let jobs = store
        .create_stream(
            "jobs",
            spool::StreamConfig::default().dedup_window(Duration::ZERO),
        )
        .unwrap();
    publish(&js, 0..40).await;
    let config = InboundConfig {
        ack_wait: Duration::from_secs(1),
        fault: std::sync::Arc::new(spool_bridge::fault::Fault::drop_acks(1)),
        ..InboundConfig::new("jobs.>", "jobs")
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = {
        let (store, js) = (store.clone(), js.clone());
        tokio::spawn(async move {
            inbound::run(&store, &js, &config, async {
                let _ = rx.await;
            })
            .await
        })
    };
    // The first batch's acks are lost: after the ack wait (1 s) JetStream
    // delivers it again. Wait until it did and the consumer has nothing
    // pending.
    let consumer_idle = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(s) = js.get_stream("JOBS").await else {
                continue;
            };
            let Ok(mut c) = s
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("spool-bridge-in")
                .await
            else {
                continue;
            };
            if let Ok(info) = c.info().await {
                // Deliveries beyond the 40 messages: redeliveries; none
                // pending an ack: the bridge acked them all.
                if info.num_ack_pending == 0
                    && info.num_pending == 0
                    && info.delivered.consumer_sequence > 40
                {
                    return true;
                }
            }
        }
        false
    };
    assert!(
        consumer_idle.await,
        "the lost acks led to redeliveries, then all acked"
    );
    tx.send(()).unwrap();
    assert_eq!(bridge.await.unwrap().unwrap(), 40);
    assert_eq!(jobs.stats().messages(), 40, "each message appended once");
    for (i, r) in jobs.iter_from(0).enumerate() {
        let r = r.unwrap();
        assert_eq!(
            r.header("Nats-Stream-Sequence"),
            Some(format!("{}", i + 1).as_bytes())
        );
    }
}
