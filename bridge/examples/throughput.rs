//! Forwarded messages per second, Spool → JetStream, for 128 B and 4 KiB
//! messages, beside two ceilings on the same server, each with 256
//! publishes in flight as the bridge has: a plain async-nats publisher, and
//! one that sends what the bridge sends (its headers, a message id and the
//! two compare-and-set checks), without Spool's reads and acks. Starts its
//! own `nats-server -js` (as the tests do); checks that every message
//! arrived once.
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

        // The ceilings: a plain publisher, and one that sends what the
        // bridge sends (its headers, the message id and both
        // compare-and-set checks), so that the server does the same work.
        let mut ceilings = Vec::new();
        for checked in [false, true] {
            let name = format!("PLAIN{size}{}", if checked { "C" } else { "" });
            let subject = format!("plain.{size}.{checked}");
            let js = common::jetstream(&server, &name, &[&subject]).await;
            ceilings.push(plain(&js, &subject, &payload, n, checked).await?);
        }

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
        let (plain, checked) = (ceilings[0], ceilings[1]);
        println!(
            "{size:>5} B: bridge {forwarded:>7.0} msg/s; plain publisher {plain:>7.0} msg/s \
             ({:.0}%); with the bridge's headers and checks {checked:>7.0} msg/s ({:.0}%)",
            100.0 * forwarded / plain,
            100.0 * forwarded / checked
        );
    }
    Ok(())
}

/// Publishes `n` messages with 256 in flight; returns messages per second.
/// `checked`: each with the headers the bridge adds (origin, position,
/// priority, offset), a message id, the expected last subject sequence and
/// the expected last message id, as the bridge's pipeline sends them.
async fn plain(
    js: &async_nats::jetstream::Context,
    subject: &str,
    payload: &[u8],
    n: u64,
    checked: bool,
) -> Result<f64> {
    use async_nats::jetstream::message::PublishMessage;
    let start = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for i in 0..n {
        let body = bytes::Bytes::copy_from_slice(payload);
        let ack = if checked {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(outbound::ORIGIN, "plain");
            headers.insert(outbound::POSITION, format!("0:{i}").as_str());
            headers.insert(outbound::PRIORITY, "0");
            headers.insert(outbound::OFFSET, i.to_string().as_str());
            let mut msg = PublishMessage::build()
                .payload(body)
                .headers(headers)
                .message_id(format!("plain/s/0/{i}"))
                .expected_last_subject_sequence(i);
            if i > 0 {
                msg = msg.expected_last_message_id(format!("plain/s/0/{}", i - 1));
            }
            js.send_publish(subject.to_string(), msg).await?
        } else {
            js.publish(subject.to_string(), body).await?
        };
        acks.push_back(ack);
        if acks.len() >= 256 {
            if let Some(a) = acks.pop_front() {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
