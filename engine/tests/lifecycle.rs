//! Goal: the calls that only open what exists never create anything (a
//! misspelled stream or consumer name is a typed error, on disk too), and
//! get-or-create with a configuration never hands back a stream configured
//! otherwise, also after a reopen.

use spool::{Error, Options, Store, StreamConfig};

#[test]
fn opening_what_does_not_exist_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert!(matches!(
            store.open_stream("orders"),
            Err(Error::StreamNotFound { name }) if name == "orders"
        ));
        let orders = store.stream("orders").unwrap();
        orders.consumer("billing").unwrap();
        assert!(matches!(
            orders.open_consumer("biling"),
            Err(Error::ConsumerNotFound { stream, consumer })
                if stream == "orders" && consumer == "biling"
        ));
        assert!(matches!(
            store.open_stream("bad/name"),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            orders.open_consumer("bad/name"),
            Err(Error::InvalidName { .. })
        ));
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.streams(), ["orders"]);
    let orders = store.open_stream("orders").unwrap();
    assert_eq!(orders.consumers(), ["billing"]);
    orders.send(b"one").unwrap();
    let billing = orders.open_consumer("billing").unwrap();
    assert_eq!(billing.try_receive().unwrap().unwrap().payload(), b"one");
    let handle = orders.clone();
    store.close().unwrap();
    assert!(matches!(
        handle.open_consumer("billing"),
        Err(Error::Closed)
    ));
}

#[test]
fn get_or_create_with_a_config_checks_the_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let three = StreamConfig::default().priorities(3);
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let jobs = store.stream_with("jobs", three.clone()).unwrap();
        assert_eq!(jobs.config(), &three);
        assert_eq!(
            store.stream_with("jobs", three.clone()).unwrap().config(),
            &three
        );
        // A stream made by `stream` (the default configuration) is found
        // out too, instead of being used as if it had three levels.
        store.stream("events").unwrap();
        assert!(matches!(
            store.stream_with("events", three.clone()),
            Err(Error::ConfigMismatch { name, .. }) if name == "events"
        ));
        assert!(matches!(
            store.stream_with("new", StreamConfig::default().priorities(0)),
            Err(Error::InvalidConfig(_))
        ));
        assert_eq!(store.streams(), ["events", "jobs"]);
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        store
            .stream_with("jobs", three)
            .unwrap()
            .config()
            .priorities,
        3
    );
    let e = store
        .stream_with("jobs", StreamConfig::default())
        .unwrap_err();
    assert!(matches!(e, Error::ConfigMismatch { .. }), "{e}");
    assert!(e.to_string().contains("priorities: 3"), "{e}");
}
