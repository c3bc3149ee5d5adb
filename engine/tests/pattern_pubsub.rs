//! Goal: publish/subscribe: several named consumers on one stream each see
//! every message, at their own pace, from their own durable cursor.
//!
//! Method: three subscribers read different amounts, the store is reopened,
//! each continues where it acknowledged.

use spool::{Durability, Options, Store};

#[test]
fn fan_out_to_three_subscribers_with_durable_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::Always);
    let names = ["audit", "billing", "search"];
    let read = [10u64, 500, 1000];
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let s = store.stream("events").unwrap();
        let msgs: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        s.send_batch(msgs.iter()).unwrap();
        for (name, n) in names.iter().zip(read) {
            let c = s.consumer(name).unwrap();
            let mut last = None;
            for i in 0..n {
                let batch = c.receive_batch(64, std::time::Duration::ZERO).unwrap();
                if batch.is_empty() {
                    break;
                }
                for d in &batch {
                    assert_eq!(d.payload(), (d.offset() as u32).to_le_bytes());
                    last = Some(d.offset());
                }
                if last.unwrap() + 1 >= n {
                    break;
                }
                let _ = i;
            }
            // Subscribers acknowledge in order: the cursor fast path.
            c.ack_up_to(0, n - 1).unwrap();
            assert_eq!(c.stats().buckets[0].ack_floor, n);
        }
    }
    let store = Store::open(dir.path(), opts).unwrap();
    let s = store.stream("events").unwrap();
    assert_eq!(s.consumers(), names.map(String::from).to_vec());
    for (name, n) in names.iter().zip(read) {
        let c = s.consumer(name).unwrap();
        let mut next = n;
        while let Some(d) = c.try_receive().unwrap() {
            assert_eq!(d.offset(), next, "{name} continues at its cursor");
            next += 1;
            d.ack().unwrap();
        }
        assert_eq!(next, 1000, "{name} saw every message");
    }
}
