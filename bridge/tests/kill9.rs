//! The `spool-bridge` binary, SIGKILLed at random points and restarted,
//! both ways: every message exactly once on the other side, in order.

mod common;

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use spool::{Options, Store};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROUNDS: usize = 12;

struct Rng(u64);
impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("BRIDGE_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("BRIDGE_KILL_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn bridge(store: &Path, url: &str, args: &[&str], fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spool-bridge"));
    cmd.arg("--store")
        .arg(store)
        .args(["--nats", url])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match fault {
        Some(f) => cmd.env("SPOOL_BRIDGE_FAULT", f),
        None => cmd.env_remove("SPOOL_BRIDGE_FAULT"),
    };
    cmd.spawn().expect("start spool-bridge")
}

/// Runs the bridge until `done` says so (checked with the bridge stopped).
/// Each of the first rounds ends in a crash: alternately a SIGKILL after
/// a random time, and an abort at one of `points` (the seam of
/// `spool_bridge::fault`: exactly between two protocol steps), reached a
/// random 1st..3rd time. Returns how many rounds the seam aborted.
async fn kill_and_restart(
    rng: &mut Rng,
    store: &Path,
    url: &str,
    args: &[&str],
    points: &[&str],
    mut between: impl FnMut(usize),
    done: impl Fn() -> bool,
) -> usize {
    let mut aborted = 0;
    for round in 0..ROUNDS {
        between(round);
        if round % 2 == 0 {
            let mut child = bridge(store, url, args, None);
            tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        } else {
            let point = points[rng.below(points.len() as u64) as usize];
            let fault = format!("{point}:{}", 1 + rng.below(3));
            let mut child = bridge(store, url, args, Some(&fault));
            // It aborts at the point, or (nothing more to do) is killed.
            let mut exited = None;
            for _ in 0..150 {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    exited = Some(status);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match exited {
                Some(status) => {
                    assert!(!status.success(), "{fault}: exited {status}");
                    aborted += 1;
                }
                None => {
                    child.kill().expect("SIGKILL");
                    child.wait().expect("wait");
                }
            }
        }
    }
    // Then let it finish, with restarts until done.
    for _ in 0..200 {
        if done() {
            return aborted;
        }
        let mut child = bridge(store, url, args, None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }
    panic!("the bridge did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_killed_at_random_points() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "ORDERS", &["spool.orders"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut rng = Rng::seeded();
    let per_round = 400u64;
    let total = per_round * ROUNDS as u64;
    let send = |round: usize| {
        let store = Store::open(&store_dir, Options::default()).unwrap();
        let orders = store.stream("orders").unwrap();
        let first = round as u64 * per_round;
        let bodies: Vec<String> = (first..first + per_round)
            .map(|i| format!("order {i}"))
            .collect();
        orders
            .send_batch(bodies.iter().map(String::as_str))
            .unwrap();
    };
    let done = || {
        let store = Store::open(&store_dir, Options::default()).unwrap();
        let c = store
            .stream("orders")
            .unwrap()
            .consumer("bridge-out")
            .unwrap();
        c.stats().buckets[0].ack_floor >= total
    };
    let aborted = kill_and_restart(
        &mut rng,
        &store_dir,
        &server.url(),
        &["out", "--stream", "orders", "--subject", "spool.orders"],
        &["publish-sent", "publish-acked"],
        send,
        done,
    )
    .await;
    assert!(aborted > 0, "the fault seam aborted no round");

    let s = js.get_stream("ORDERS").await.unwrap();
    let c = s
        .create_consumer(pull::Config {
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
    let want: Vec<String> = (0..total).map(|i| format!("order {i}")).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "no loss, no duplicate on the subject"
    );
    assert_eq!(got, want, "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_killed_at_random_points() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let js = common::jetstream(&server, "JOBS", &["jobs.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut rng = Rng::seeded();
    let per_round = 400u32;
    let total = per_round * ROUNDS as u32;
    // Publish each round's messages from a task while the bridge runs.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            while let Some(round) = rx.recv().await {
                let first = round as u32 * per_round;
                for i in first..first + per_round {
                    js.publish(format!("jobs.{}", i % 4), format!("job {i}").into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
            }
        })
    };
    let done = || {
        let store = Store::open(&store_dir, Options::default()).unwrap();
        store.stream("jobs").unwrap().stats().messages() >= total as u64
    };
    let aborted = kill_and_restart(
        &mut rng,
        &store_dir,
        &server.url(),
        &["in", "--subject", "jobs.>", "--stream", "jobs"],
        &["append-written", "append-durable"],
        |round| tx.send(round).unwrap(),
        done,
    )
    .await;
    assert!(aborted > 0, "the fault seam aborted no round");
    drop(tx);
    publisher.await.unwrap();
    // A last run after every publish has landed.
    let mut child = bridge(
        &store_dir,
        &server.url(),
        &["in", "--subject", "jobs.>", "--stream", "jobs"],
        None,
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let store = Store::open(&store_dir, Options::default()).unwrap();
    let jobs = store.stream("jobs").unwrap();
    assert_eq!(
        jobs.stats().messages(),
        total as u64,
        "no loss, no duplicate"
    );
    for i in 0..total as u64 {
        let r = jobs.read_priority(0, i).unwrap().expect("record");
        assert_eq!(r.payload(), format!("job {i}").as_bytes(), "in order");
    }
}
