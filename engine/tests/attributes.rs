//! Message attributes (deliver-at, expires-at, message id, group) are
//! stored with the message and read back; bad ones are refused; stream
//! configurations with the fields of `stream.meta` version 2 persist.

use spool::{attribute_headers as attr, Error, Message, Options, Store, StreamConfig};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn version_of(path: &std::path::Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

#[test]
fn attributes_are_stored_and_read_back_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let at = UNIX_EPOCH + Duration::from_micros(4_000_000_000_000_000);
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let s = store.stream("s").unwrap();
        let before = SystemTime::now();
        s.send_message(
            Message::new(b"a")
                .deliver_at(at)
                .ttl(Duration::from_secs(60))
                .id("order-1")
                .group("customer-7")
                .header("k", "v"),
        )
        .unwrap();
        s.send_message(Message::new(b"b").header(attr::DELIVER_AT, "12"))
            .unwrap();
        let r = s.read(0).unwrap().unwrap();
        let expires = r.expires_at().unwrap();
        assert!(expires >= before + Duration::from_secs(60));
        assert!(expires <= SystemTime::now() + Duration::from_secs(60));
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let r = s.read(0).unwrap().unwrap();
    assert_eq!(r.payload(), b"a");
    assert_eq!(r.deliver_at(), Some(at));
    assert_eq!(r.message_id(), Some(&b"order-1"[..]));
    assert_eq!(r.group(), Some(&b"customer-7"[..]));
    let keys: Vec<&str> = r.headers().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            attr::DELIVER_AT,
            attr::EXPIRES_AT,
            attr::MESSAGE_ID,
            attr::GROUP,
            "k"
        ]
    );
    assert_eq!(r.header(attr::DELIVER_AT), Some(&b"4000000000000000"[..]));
    // A header of an attribute's name on a message without attributes is
    // an ordinary header.
    let plain = s.read(1).unwrap().unwrap();
    assert_eq!(plain.header(attr::DELIVER_AT), Some(&b"12"[..]));
    assert_eq!(plain.deliver_at(), None);
}

#[test]
fn bad_attributes_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let long = vec![b'x'; 256];
    let bad = [
        Message::new(b"x").ttl(Duration::ZERO),
        Message::new(b"x").ttl(Duration::MAX),
        Message::new(b"x").deliver_after(Duration::from_secs(101 * 365 * 24 * 3600)),
        Message::new(b"x").deliver_at(UNIX_EPOCH - Duration::from_secs(1)),
        Message::new(b"x")
            .deliver_at(SystemTime::now() + Duration::from_secs(200 * 365 * 24 * 3600)),
        Message::new(b"x").id(""),
        Message::new(b"x").group(&long),
    ];
    for m in bad {
        let shown = format!("{m:?}");
        assert!(
            matches!(s.send_message(m.clone()), Err(Error::InvalidArgument(_))),
            "{shown}"
        );
        assert!(
            matches!(s.send_batch([m]), Err(Error::InvalidArgument(_))),
            "{shown}"
        );
    }
    assert_eq!(s.stats().buckets[0].end_offset, 0);
    // At the limits: accepted.
    let max = vec![b'x'; 255];
    s.send_message(
        Message::new(b"x")
            .id(&max)
            .group(&max)
            .deliver_after(Duration::ZERO),
    )
    .unwrap();
    assert_eq!(s.read(0).unwrap().unwrap().message_id(), Some(&max[..]));
}

#[test]
fn a_batch_with_attributes_on_several_levels_keeps_each_messages_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .unwrap();
    let ids: Vec<String> = (0..6).map(|i| format!("id-{i}")).collect();
    let msgs: Vec<Message> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Message::new(id).id(id).priority((i % 2) as u8))
        .collect();
    let offsets = s.send_batch(msgs.iter().cloned()).unwrap();
    for (i, o) in offsets.iter().enumerate() {
        let r = s.read_priority((i % 2) as u8, *o).unwrap().unwrap();
        assert_eq!(r.message_id(), Some(ids[i].as_bytes()));
        assert_eq!(r.payload(), ids[i].as_bytes());
    }
}

#[test]
fn stream_configs_of_version_2_persist_and_version_1_stays_for_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let bounded = StreamConfig::default()
        .dedup_window(Duration::from_secs(3600))
        .capacity_bytes(1 << 30)
        .capacity_messages(1000);
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        store
            .create_stream("plain", StreamConfig::default())
            .unwrap();
        store.create_stream("bounded", bounded.clone()).unwrap();
        let refused = store.create_stream("zero", StreamConfig::default().capacity_messages(0));
        assert!(matches!(refused, Err(Error::InvalidConfig(_))));
        store.close().unwrap();
    }
    let streams = dir.path().join("streams");
    assert_eq!(version_of(&streams.join("plain").join("stream.meta")), 1);
    assert_eq!(version_of(&streams.join("bounded").join("stream.meta")), 2);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.open_stream("bounded").unwrap().config(), &bounded);
    assert_eq!(
        store.open_stream("plain").unwrap().config(),
        &StreamConfig::default()
    );
    let other = store.stream_with("bounded", StreamConfig::default());
    assert!(matches!(other, Err(Error::ConfigMismatch { .. })));
}
