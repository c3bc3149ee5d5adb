//! README's two commands: a stream forwarded to a local server by
//! `spool-bridge ... --create-stream ORDERS out`, and brought back into
//! another store by `... in`, both stopped by SIGTERM (a clean exit), every
//! message once and in order, headers kept.

mod common;

use spool::{Message, Options, Store};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const N: u64 = 500;

fn bridge(store: &Path, url: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_spool-bridge"))
        .arg("--store")
        .arg(store)
        .args(["--nats", url, "--create-stream", "ORDERS"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spool-bridge")
}

/// SIGTERM, then the exit status: a clean stop.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(
        exit.success(),
        "the bridge exits cleanly on SIGTERM: {exit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_forward_a_stream_and_bring_it_back() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (outbox, inbox) = (dir.path().join("demo-store"), dir.path().join("inbox"));
    {
        let store = Store::open(&outbox, Options::default()).unwrap();
        let orders = store.stream("orders").unwrap();
        for i in 0..N {
            let body = format!("order #{i}");
            orders
                .send_message(Message::new(body.as_bytes()).header("customer", "42"))
                .unwrap();
        }
    }

    // Out: no JetStream stream exists yet; --create-stream makes it.
    let out = bridge(
        &outbox,
        &server.url(),
        &["out", "--stream", "orders", "--subject", "spool.orders"],
    );
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut on_subject = 0;
    for _ in 0..300 {
        if let Ok(mut s) = js.get_stream("ORDERS").await {
            on_subject = s.info().await.map(|i| i.state.messages).unwrap_or(0);
            if on_subject >= N {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(on_subject, N, "all forwarded");
    stop(out);

    // In: the stream is found (not made again); run until the inbox holds
    // everything, stopping it each time to look (the store is locked while
    // the bridge runs).
    let mut got = 0;
    for _ in 0..30 {
        let inb = bridge(
            &inbox,
            &server.url(),
            &["in", "--subject", "spool.orders", "--stream", "orders"],
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop(inb);
        let store = Store::open(&inbox, Options::default()).unwrap();
        got = store.stream("orders").unwrap().stats().messages();
        if got >= N {
            break;
        }
    }
    assert_eq!(got, N);
    let store = Store::open(&inbox, Options::default()).unwrap();
    let orders = store.stream("orders").unwrap();
    for (i, r) in orders.iter_from(0).enumerate() {
        let r = r.unwrap();
        assert_eq!(r.payload(), format!("order #{i}").as_bytes());
        assert_eq!(r.header("customer"), Some(&b"42"[..]));
    }
    let info = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.subjects, vec!["spool.orders".to_string()]);
}
