//! The JetStream stream a bridge needs: found, created, or refused.

mod common;

use spool_bridge::setup::{ensure_stream, Ensured};
use spool_bridge::BridgeError;

#[tokio::test]
async fn a_stream_is_created_once_found_after_and_never_rewritten() {
    let Some(server) = common::NatsServer::start() else {
        return;
    };
    // A context with an unrelated stream (the harness waits for JetStream).
    let js = common::jetstream(&server, "OTHER", &["other.>"]).await;

    let first = ensure_stream(&js, "ORDERS", "spool.orders").await.unwrap();
    assert_eq!(first, Ensured::Created("ORDERS".to_string()));
    let info = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.subjects, vec!["spool.orders".to_string()]);
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );

    // Found again, under whatever name asked for: the name only names a
    // stream to create.
    for name in ["ORDERS", "ANY"] {
        let again = ensure_stream(&js, name, "spool.orders").await.unwrap();
        assert_eq!(again, Ensured::Found("ORDERS".to_string()));
    }
    assert!(js.get_stream("ANY").await.is_err(), "no second stream");

    // A subject inside another stream's wildcard is that stream's.
    let inside = ensure_stream(&js, "X", "other.a").await.unwrap();
    assert_eq!(inside, Ensured::Found("OTHER".to_string()));

    // A stream of that name capturing other subjects is not rewritten.
    let taken = ensure_stream(&js, "OTHER", "spool.new").await.unwrap_err();
    assert!(
        matches!(&taken, BridgeError::Setup { stream, .. } if stream == "OTHER"),
        "{taken}"
    );
    let info = js
        .get_stream("OTHER")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.subjects, vec!["other.>".to_string()]);

    // Names and subjects JetStream cannot take are refused up front.
    for (name, subject) in [("", "a.b"), ("A.B", "a.b"), ("A B", "a.b"), ("OK", "a..b")] {
        let e = ensure_stream(&js, name, subject).await.unwrap_err();
        assert!(
            matches!(e, BridgeError::Setup { .. }),
            "{name:?} {subject:?}: {e}"
        );
    }
}
