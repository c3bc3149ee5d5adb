//! Goal: `segment-tool info` shows the identity of a stream's typed
//! messages (`message_type.meta`) in both formats, and `verify` reports a
//! damaged one (exit 1, naming the file), while the store still opens for
//! the bytes API and a typed open fails with `Error::Corrupt`. Method: a
//! typed stream built with the spool API in a temporary directory, damaged
//! with std::fs, the real binary run on it.

mod common;
use common::*;
use serde::{Deserialize, Serialize};
use spool::{Error, MessageType, Store};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u64,
}

impl MessageType for Order {
    const NAME: &'static str = "shop.Order";
    const VERSION: u32 = 3;
}

fn build(root: &std::path::Path) {
    let store = Store::open(root, opts()).unwrap();
    let orders = store.typed_stream::<Order>("orders").unwrap();
    orders.send(&Order { id: 1 }).unwrap();
    store.stream("plain").unwrap().send(b"bytes").unwrap();
    drop(orders);
    store.close().unwrap();
}

#[test]
fn info_shows_the_message_type_and_verify_finds_it_damaged() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let o = tool(&["info", s(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("message type: shop.Order version 3 (postcard)"),
        "{}",
        stdout(&o)
    );
    let o = tool(&["info", s(dir.path()), "--format", "json"]);
    let records = json_records(&o);
    let streams: Vec<_> = records.iter().filter(|(k, _)| k == "stream").collect();
    let orders = streams
        .iter()
        .find(|(_, v)| v["name"] == "orders")
        .expect("orders listed");
    assert_eq!(orders.1["message_type"]["name"], "shop.Order");
    assert_eq!(orders.1["message_type"]["version"], 3);
    assert_eq!(orders.1["message_type"]["codec"], "postcard");
    let plain = streams
        .iter()
        .find(|(_, v)| v["name"] == "plain")
        .expect("plain listed");
    assert!(plain.1["message_type"].is_null());
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");

    // One flipped byte of the body (the CRC catches it).
    let file = dir.path().join("streams/orders/message_type.meta");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1, "{problems:?}");
    assert!(
        problems.iter().any(|p| p["file"].as_str() == file.to_str()
            && p["reason"].as_str().unwrap().contains("message type")),
        "{problems:?}"
    );

    // The engine: the bytes API still works, a typed open is refused.
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(store.stream("orders").unwrap().stats().messages(), 1);
    assert!(matches!(
        store.typed_stream::<Order>("orders"),
        Err(Error::Corrupt { .. })
    ));
}
