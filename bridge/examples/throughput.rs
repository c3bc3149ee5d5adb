//! Forwarded messages per second, Spool → JetStream, for 128 B and 4 KiB
//! messages, beside a plain async-nats publisher to the same server (the
//! ceiling: the same pipelined publishes, without Spool's reads, acks or
//! the position headers). Starts its own `nats-server -js` (as the tests
//! do); checks that every message arrived once.
//!
//! ```text
//! cargo run --release -p spool-bridge --example throughput [-- MESSAGES]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use spool::{Options, Store};
use spool_bridge::outbound::{self, OutboundConfig};
use std::time::{Duration, Instant};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let n: u64 = std::env::args().nth(1).map_or(Ok(20_000), |a| a.parse())?;
    let Some(server) = common::NatsServer::start() else {
        return Err("no nats-server binary".into());
    };
    println!("{n} messages each, 256 in flight, nats-server on loopback");
    for size in [128usize, 4096] {
        let payload = vec![b'x'; size];

        // The ceiling: a plain publisher.
        let plain_subject = format!("plain.{size}");
        let js = common::jetstream(&server, &format!("PLAIN{size}"), &[&plain_subject]).await;
        let start = Instant::now();
        let mut acks = std::collections::VecDeque::new();
        for _ in 0..n {
            acks.push_back(
                js.publish(plain_subject.clone(), payload.clone().into())
                    .await?,
            );
            if acks.len() >= 256 {
                if let Some(a) = acks.pop_front() {
                    a.await?;
                }
            }
        }
        for a in acks {
            a.await?;
        }
        let plain = n as f64 / start.elapsed().as_secs_f64();

        // The bridge, from a store filled beforehand.
        let subject = format!("spool.{size}");
        let js = common::jetstream(&server, &format!("BRIDGE{size}"), &[&subject]).await;
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), Options::default())?;
        let stream = store.stream("s")?;
        let batch: Vec<&[u8]> = (0..1000).map(|_| &payload[..]).collect();
        for _ in 0..n / 1000 {
            stream.send_batch(batch.iter().copied())?;
        }
        let total = (n / 1000) * 1000;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let start = Instant::now();
        let bridge = {
            let (store, js, subject) = (store.clone(), js.clone(), subject.clone());
            tokio::spawn(async move {
                let config = OutboundConfig::new("s", &subject);
                outbound::run(&store, &js, &config, async {
                    let _ = rx.await;
                })
                .await
            })
        };
        let consumer = stream.consumer("bridge-out")?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while consumer.stats().buckets[0].ack_floor < total {
            if Instant::now() > deadline {
                return Err("the bridge did not finish within 10 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let forwarded = total as f64 / start.elapsed().as_secs_f64();
        let _ = tx.send(());
        let published = bridge.await??;
        let on_subject = js
            .get_stream(format!("BRIDGE{size}"))
            .await?
            .info()
            .await?
            .state
            .messages;
        if published != total || on_subject != total {
            return Err(format!(
                "published {published}, on the subject {on_subject}, want {total}"
            )
            .into());
        }
        println!(
            "{size:>5} B: bridge {forwarded:>9.0} msg/s, plain publisher {plain:>9.0} msg/s ({:.0}%)",
            100.0 * forwarded / plain
        );
    }
    Ok(())
}
