//! Goal: the basic round trip works: send, read back, reopen, read again.
use spool::{Durability, Message, Options, Store, StreamConfig};

#[test]
fn send_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .segment_bytes_max(64 * 1024)
        .durability(Durability::Always);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let s = store.stream("orders").unwrap();
        for i in 0..2000u32 {
            let payload = format!("message {i}");
            assert_eq!(s.send(payload.as_bytes()).unwrap(), i as u64);
        }
        let r = s.read(7).unwrap().unwrap();
        assert_eq!(r.payload(), b"message 7");
        assert!(s.stats().buckets[0].segments > 1);
        let p = store
            .create_stream("prio", StreamConfig::default().priorities(3))
            .unwrap();
        p.send_message(Message::new(b"hi").priority(2).header("k", "v"))
            .unwrap();
    }
    let store = Store::open(dir.path(), opts).unwrap();
    assert!(
        store.recovery_report().is_clean(),
        "{}",
        store.recovery_report()
    );
    assert_eq!(
        store.streams(),
        vec!["orders".to_string(), "prio".to_string()]
    );
    let s = store.stream("orders").unwrap();
    let all: Vec<_> = s.iter_from(0).map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 2000);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset(), i as u64);
        assert_eq!(r.payload(), format!("message {i}").as_bytes());
    }
    assert_eq!(s.send(b"more").unwrap(), 2000);
    let p = store.stream("prio").unwrap();
    let r = p.read_priority(2, 0).unwrap().unwrap();
    assert_eq!(r.header("k"), Some(&b"v"[..]));
    assert_eq!(r.payload(), b"hi");
}
