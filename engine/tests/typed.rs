//! Goal: typed messages keep their promises. Values round-trip through
//! every send and receive form (blocking, batch, async, with headers and
//! priorities); the identity recorded with a stream is written at the first
//! typed open and checked at every later one (another name or codec, or a
//! newer version, is `TypeMismatch`; an older version is raised, after
//! which the older type is refused), across reopens and against racing
//! opens; a message that does not decode never holds the consumer up and
//! can be acknowledged, given back or dead-lettered; a damaged
//! `message_type.meta` is `Corrupt` for a typed open and harmless to the
//! bytes API; a power cut or an I/O error at every operation of the first
//! typed open and of an upgrade leaves the file old or new, never torn.
//!
//! Method: stores on the simulated file system (`spool::io::sim`), the
//! operations of one typed open counted and a cut or fault injected at
//! each; a proptest model of the identity under random typed opens and
//! reopens.

pub mod common;

use common::sim;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use spool::format::meta::{self, MESSAGE_TYPE_MAGIC};
use spool::format::typed::{decode_identity, TypeIdentity};
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{
    dead_letter_headers as dl, Codec, CodecError, ConsumerConfig, Durability, Error, Message,
    MessageType, OwnedMessage, Postcard, Store, StreamConfig, TypedStream,
};
use std::path::Path;
use std::time::Duration;

const ROOT: &str = "/t";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct OrderV1 {
    id: u64,
    item: String,
}

impl MessageType for OrderV1 {
    const NAME: &'static str = "shop.Order";
    const VERSION: u32 = 1;
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
}

impl MessageType for Order {
    const NAME: &'static str = "shop.Order";
    const VERSION: u32 = 2;

    fn upgrade<C: Codec>(from: u32, body: &[u8]) -> Result<Self, CodecError> {
        if from != 1 {
            return Err(CodecError::new(format!("no upgrade from {from}")));
        }
        let old: OrderV1 = C::decode(body)?;
        Ok(Order {
            id: old.id,
            item: old.item,
            quantity: 1,
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Invoice {
    id: u64,
}

impl MessageType for Invoice {
    const NAME: &'static str = "shop.Invoice";
    const VERSION: u32 = 1;
}

/// Postcard under another name: another identity.
struct Other;

impl Codec for Other {
    const NAME: &'static str = "other";
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        Postcard::encode(value, out)
    }
    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        Postcard::decode(bytes)
    }
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: format!("item {id}"),
        quantity: id as u32 % 7,
    }
}

fn meta_path(stream: &str) -> std::path::PathBuf {
    Path::new(ROOT)
        .join("streams")
        .join(stream)
        .join("message_type.meta")
}

/// The identity recorded on `fs`; `None` if no file. Panics if the file is
/// there but does not decode (torn or damaged).
fn recorded(fs: &SimFs, stream: &str) -> Option<TypeIdentity> {
    let bytes = fs.read_file(&meta_path(stream)).ok()?;
    let (version, body) = meta::decode(MESSAGE_TYPE_MAGIC, &bytes).expect("a whole frame");
    assert_eq!(version, meta::MESSAGE_TYPE_VERSION);
    Some(decode_identity(body).expect("a whole body"))
}

fn id(name: &str, version: u32, codec: &str) -> TypeIdentity {
    TypeIdentity {
        name: name.into(),
        version,
        codec: codec.into(),
    }
}

fn open(fs: &SimFs) -> Store {
    Store::open(ROOT, sim::options(fs, Durability::Always)).unwrap()
}

#[test]
fn values_round_trip_through_every_send_and_receive() {
    let fs = SimFs::new();
    let store = open(&fs);
    let orders = store
        .typed_stream_with::<Order>("orders", StreamConfig::default().priorities(2))
        .unwrap();
    assert_eq!(orders.send(&order(0)).unwrap(), 0);
    assert_eq!(orders.send_batch(&[order(1), order(2)]).unwrap(), [1, 2]);
    let urgent = spool::TypedMessage::new(&order(3))
        .unwrap()
        .header("who", "ada")
        .priority(1);
    assert_eq!(orders.send_message(&urgent).unwrap(), 0);
    assert_eq!(
        orders
            .send_messages(&[urgent.clone(), urgent.clone()])
            .unwrap(),
        [1, 2]
    );
    futures::executor::block_on(async {
        assert_eq!(orders.send_async(&order(4)).await.unwrap(), 3);
        assert_eq!(orders.send_batch_async(&[order(5)]).await.unwrap(), vec![4]);
        assert_eq!(orders.send_message_async(&urgent).await.unwrap(), 3);
    });
    assert_eq!(orders.read(2).unwrap(), Some(order(2)));
    assert_eq!(orders.read_priority(1, 0).unwrap(), Some(order(3)));
    assert_eq!(orders.read(99).unwrap(), None);

    let c = orders.consumer("c").unwrap();
    let first = c.try_receive().unwrap().unwrap();
    assert_eq!((first.priority(), first.offset()), (1, 0));
    assert_eq!(first.value().unwrap(), &order(3));
    assert_eq!(first.header("who"), Some(&b"ada"[..]));
    assert_eq!(first.schema_version(), Some(2));
    first.ack().unwrap();
    let batch = c.receive_batch(3, Duration::ZERO).unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|d| d.value().unwrap() == &order(3)));
    c.ack_batch(batch).unwrap();
    let mut got = Vec::new();
    futures::executor::block_on(async {
        let d = c.receive_async(Duration::ZERO).await.unwrap().unwrap();
        got.push(d.value().unwrap().id);
        d.ack_async().await.unwrap();
        for d in c.receive_batch_async(10, Duration::ZERO).await.unwrap() {
            got.push(d.value().unwrap().id);
            d.ack().unwrap();
        }
    });
    assert_eq!(got, [0, 1, 2, 4, 5]);
    assert!(c.try_receive().unwrap().is_none());
    assert_eq!(c.consumer().stats().pending(), 0);

    // The stream of deliveries, ended by the close.
    orders.send(&order(6)).unwrap();
    let other = orders.consumer("other").unwrap();
    let mut deliveries = other.deliveries();
    let d = futures::executor::block_on(futures::StreamExt::next(&mut deliveries))
        .unwrap()
        .unwrap();
    assert_eq!(d.value().unwrap(), &order(3));
    drop((d, deliveries, other, c, orders));
    store.close().unwrap();
}

#[test]
fn owned_messages_batch_through_the_bytes_api() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .unwrap();
    let batch: Vec<OwnedMessage> = (0..4u8)
        .map(|i| {
            OwnedMessage::new(vec![i; i as usize + 1])
                .header("i", [i])
                .priority(i % 2)
        })
        .collect();
    let offsets = s.send_batch(&batch).unwrap();
    assert_eq!(offsets, [0, 0, 1, 1]);
    let r = s.read_priority(1, 1).unwrap().unwrap();
    assert_eq!(r.payload(), [3, 3, 3, 3]);
    assert_eq!(r.header("i"), Some(&[3u8][..]));
    let back = OwnedMessage::from(Message::new(b"x").header("k", "v").priority(1));
    assert_eq!(
        back,
        OwnedMessage::new(b"x".to_vec())
            .header("k", "v")
            .priority(1)
    );
    assert_eq!(back.headers().collect::<Vec<_>>(), [("k", &b"v"[..])]);
    assert_eq!(back.priority_level(), 1);
}

#[test]
fn the_identity_is_recorded_checked_and_raised() {
    let fs = SimFs::new();
    let store = open(&fs);
    assert_eq!(recorded(&fs, "orders"), None);
    let v1 = store.typed_stream::<OrderV1>("orders").unwrap();
    assert_eq!(
        recorded(&fs, "orders"),
        Some(id("shop.Order", 1, "postcard"))
    );
    v1.send(&OrderV1 {
        id: 1,
        item: "old".into(),
    })
    .unwrap();

    // Another type, another codec: refused, nothing changed.
    let e = store.typed_stream::<Invoice>("orders").unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { newer: false, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("`shop.Order` version 1 (postcard)")
            && text.contains("`shop.Invoice` version 1 (postcard)"),
        "Display names both: {text}"
    );
    let e = TypedStream::<OrderV1, Other>::open(&store.stream("orders").unwrap()).unwrap_err();
    assert!(e.to_string().contains("(other)"), "{e}");
    assert_eq!(
        recorded(&fs, "orders"),
        Some(id("shop.Order", 1, "postcard"))
    );

    // The same again: fine. A newer version: raised, and the old one refused.
    store.typed_stream::<OrderV1>("orders").unwrap();
    let v2 = store.typed_stream::<Order>("orders").unwrap();
    assert_eq!(
        recorded(&fs, "orders"),
        Some(id("shop.Order", 2, "postcard"))
    );
    let e = store.typed_stream::<OrderV1>("orders").unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { newer: true, .. }), "{e}");
    assert!(e.to_string().contains("downgrade"), "{e}");

    // Old messages read through the upgrade, new ones directly.
    v2.send(&order(2)).unwrap();
    let c = v2.consumer("c").unwrap();
    let old = c.try_receive().unwrap().unwrap();
    assert_eq!(old.schema_version(), Some(1));
    assert_eq!(
        old.value().unwrap(),
        &Order {
            id: 1,
            item: "old".into(),
            quantity: 1
        }
    );
    let new = c.try_receive().unwrap().unwrap();
    assert_eq!(new.into_value().unwrap(), order(2));
    // A handle opened before the upgrade still reads what it can, and gets
    // the typed error for what it cannot.
    let c1 = v1.consumer("c1").unwrap();
    assert!(c1.try_receive().unwrap().unwrap().value().is_ok());
    let newer = c1.try_receive().unwrap().unwrap();
    let e = newer.value().unwrap_err();
    assert!(
        matches!(e, Error::Decode { offset: 1, .. }) && e.to_string().contains("newer"),
        "{e}"
    );
    drop((old, newer, c, c1, v1, v2));
    store.close().unwrap();

    // Across a reopen; the bytes API is never refused.
    let store = open(&fs);
    store.stream("orders").unwrap().send(b"raw").unwrap();
    assert!(matches!(
        store.typed_stream::<OrderV1>("orders"),
        Err(Error::TypeMismatch { newer: true, .. })
    ));
    store.typed_stream::<Order>("orders").unwrap();
    assert!(matches!(
        store.typed_stream::<Invoice>("orders"),
        Err(Error::TypeMismatch { .. })
    ));
    // Another stream is another identity.
    store.typed_stream::<Invoice>("invoices").unwrap();
}

#[test]
fn racing_first_opens_record_one_type() {
    for round in 0..20 {
        let fs = SimFs::new();
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    if t % 2 == 0 {
                        TypedStream::<Order>::open(&s).map(|_| "shop.Order")
                    } else {
                        TypedStream::<Invoice>::open(&s).map(|_| "shop.Invoice")
                    }
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winner = recorded(&fs, "s").expect("recorded").name;
        for r in &results {
            match r {
                Ok(name) => assert_eq!(*name, winner, "round {round}"),
                Err(e) => assert!(matches!(e, Error::TypeMismatch { .. }), "{e}"),
            }
        }
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            2,
            "round {round}: the two opens of the winning type"
        );
    }
}

#[test]
fn a_message_that_does_not_decode_never_holds_the_consumer_up() {
    let fs = SimFs::new();
    let store = open(&fs);
    let orders = store.typed_stream::<Order>("orders").unwrap();
    let raw = orders.stream();
    raw.send(b"").unwrap(); // 0: no envelope
    raw.send(&[9, 2, 0]).unwrap(); // 1: unknown envelope version
    raw.send(&[1, 3, 0]).unwrap(); // 2: a newer schema version
    raw.send(&[1, 2, 1]).unwrap(); // 3: the codec runs out of bytes
    orders.send(&order(4)).unwrap(); // 4: fine
    let mut trailing = raw.read(4).unwrap().unwrap().payload().to_vec();
    trailing.push(0);
    raw.send(&trailing).unwrap(); // 5: a byte left over
    orders.send(&order(6)).unwrap(); // 6: fine

    let config = ConsumerConfig::default().dead_letter("orders.dead");
    let c = orders.consumer_with("c", config).unwrap();
    let mut seen = Vec::new();
    while let Some(d) = c.try_receive().unwrap() {
        let offset = d.offset();
        match d.value() {
            Ok(v) => {
                seen.push((offset, Some(v.id)));
                d.ack().unwrap();
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::Decode { offset: o, priority: 0, ref stream, .. }
                        if o == offset && stream == "orders"),
                    "{e}"
                );
                assert!(e.to_string().contains("shop.Order"), "{e}");
                assert!(!d.is_decoded());
                seen.push((offset, None));
                match offset {
                    0 => d.ack().unwrap(),
                    1 => {
                        // Given back: delivered again at once, then dropped.
                        d.nack().unwrap();
                        let again = c.try_receive().unwrap().unwrap();
                        assert_eq!((again.offset(), again.attempt()), (1, 2));
                        again.into_delivery().ack().unwrap();
                    }
                    _ => d.dead_letter(Some("undecodable")).unwrap(),
                }
            }
        }
    }
    assert_eq!(
        seen,
        [
            (0, None),
            (1, None),
            (2, None),
            (3, None),
            (4, Some(4)),
            (5, None),
            (6, Some(6))
        ]
    );
    assert_eq!(c.consumer().stats().pending(), 0);
    let dead = store.stream("orders.dead").unwrap();
    let offsets: Vec<_> = dead
        .iter_from(0)
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.header(dl::STREAM), Some(&b"orders"[..]));
            assert_eq!(r.header(dl::CONSUMER), Some(&b"c"[..]));
            assert_eq!(r.header(dl::REASON), Some(&b"undecodable"[..]));
            String::from_utf8(r.header(dl::OFFSET).unwrap().to_vec()).unwrap()
        })
        .collect();
    assert_eq!(offsets, ["2", "3", "5"]);
    assert_eq!(
        dead.read(0).unwrap().unwrap().payload(),
        [1, 3, 0],
        "the payload as it was"
    );

    // Without a dead-letter stream: refused, the message stays unacknowledged.
    raw.send(b"bad").unwrap();
    let plain = orders.consumer("plain").unwrap();
    for _ in 0..7 {
        plain.try_receive().unwrap().unwrap().ack().unwrap();
    }
    let bad = plain.try_receive().unwrap().unwrap();
    assert!(bad.value().is_err());
    assert!(matches!(
        bad.dead_letter(None),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(plain.consumer().stats().pending(), 1);
}

#[test]
fn headers_that_do_not_fit_beside_the_dead_letter_ones_are_dropped_and_counted() {
    let fs = SimFs::new();
    let store = open(&fs);
    let orders = store.typed_stream::<Order>("orders").unwrap();
    // Fits the stream's limit (a quarter of its 64 KiB segments) alone,
    // not with the dead-letter headers beside it.
    let big = vec![b'x'; 15_950];
    orders
        .stream()
        .send_message(Message::new(b"junk").header("big", &big))
        .unwrap();
    let config = ConsumerConfig::default().dead_letter("dead");
    let d = orders
        .consumer_with("c", config)
        .unwrap()
        .try_receive()
        .unwrap()
        .unwrap();
    d.dead_letter(None).unwrap();
    let r = store.stream("dead").unwrap().read(0).unwrap().unwrap();
    assert_eq!(r.payload(), b"junk");
    assert_eq!(r.header("big"), None);
    assert_eq!(r.header(dl::DROPPED_HEADERS), Some(&b"1"[..]));
}

#[test]
fn a_damaged_identity_is_corrupt_for_a_typed_open_only() {
    let fs = SimFs::new();
    let store = open(&fs);
    store
        .typed_stream::<Order>("orders")
        .unwrap()
        .send(&order(1))
        .unwrap();
    store.close().unwrap();
    let path = meta_path("orders");
    let good = fs.read_file(&path).unwrap();
    let info = spool::inspect::Inspector::new(&fs)
        .inspect_store(Path::new(ROOT))
        .unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(
        info.streams[0].message_type,
        Some(id("shop.Order", 2, "postcard"))
    );
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("bit flip", {
            let mut b = good.clone();
            b[meta::BODY_OFFSET + 5] ^= 1;
            b
        }),
        (
            "bad body, good frame",
            meta::encode(MESSAGE_TYPE_MAGIC, 1, &[1, 2, 3]),
        ),
    ];
    for (n, (what, bytes)) in damages.into_iter().enumerate() {
        fs.write_file(&path, &bytes).unwrap();
        // The inspector agrees with the typed open: a problem on the file.
        let info = spool::inspect::Inspector::new(&fs)
            .inspect_store(Path::new(ROOT))
            .unwrap();
        assert!(
            info.problems.iter().any(|p| p.file == path),
            "{what}: {:?}",
            info.problems
        );
        assert_eq!(info.streams[0].message_type, None, "{what}");
        let store = open(&fs);
        let e = store.typed_stream::<Order>("orders").unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { file, .. } if file == &path),
            "{what}: {e}"
        );
        let s = store.stream("orders").unwrap();
        assert_eq!(s.stats().messages(), 1 + n as u64, "{what}");
        s.send(b"bytes still go").unwrap();
        drop(s);
        store.close().unwrap();
    }
    fs.write_file(&path, &meta::encode(MESSAGE_TYPE_MAGIC, 9, &[]))
        .unwrap();
    let store = open(&fs);
    assert!(matches!(
        store.typed_stream::<Order>("orders"),
        Err(Error::UnsupportedVersion { version: 9, .. })
    ));
}

/// A store with stream `orders` of one message, typed as `first` if given.
fn build(fs: &SimFs, first: bool) -> Store {
    let store = open(fs);
    store.stream("orders").unwrap().send(b"raw").unwrap();
    if first {
        store.typed_stream::<OrderV1>("orders").unwrap();
    }
    store
}

/// The operations of `step` on a store built by `build(_, typed_first)`.
fn count_ops(typed_first: bool, step: &dyn Fn(&Store)) -> u64 {
    let fs = SimFs::new();
    let store = build(&fs, typed_first);
    let before = fs.stats().ops;
    step(&store);
    fs.stats().ops - before
}

/// After a cut: the store opens, the file is `old` or `new`, the message
/// is there, and a typed open of the new version works.
fn check_after_cut(fs: &SimFs, old: Option<TypeIdentity>, new: &TypeIdentity, what: &str) {
    let found = recorded(fs, "orders");
    assert!(
        found == old || found.as_ref() == Some(new),
        "{what}: found {found:?}"
    );
    let store = Store::open(ROOT, sim::options(fs, Durability::Always))
        .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    assert_eq!(
        store.stream("orders").unwrap().stats().messages(),
        1,
        "{what}"
    );
    store
        .typed_stream::<Order>("orders")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(recorded(fs, "orders").as_ref(), Some(new), "{what}");
}

fn cut_at_every_operation(typed_first: bool, step: &dyn Fn(&Store), new: &TypeIdentity) {
    let old = typed_first.then(|| id("shop.Order", 1, "postcard"));
    let ops = count_ops(typed_first, step);
    assert!(ops >= 4, "an atomic write takes a few operations: {ops}");
    for at in 1..=ops + 1 {
        for mode in [
            CutMode::DropUnsynced,
            CutMode::RandomPages(at),
            CutMode::RandomPages(at + 1000),
        ] {
            let fs = SimFs::new();
            let store = build(&fs, typed_first);
            fs.crash_at(fs.stats().ops + at, mode);
            step(&store);
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(store);
            check_after_cut(
                &image,
                old.clone(),
                new,
                &format!("cut at {at}/{ops} {mode:?}"),
            );
        }
    }
}

#[test]
fn a_power_cut_at_every_operation_of_the_first_typed_open() {
    let first = |s: &Store| {
        let _ = s.typed_stream::<Order>("orders");
    };
    cut_at_every_operation(false, &first, &id("shop.Order", 2, "postcard"));
}

#[test]
fn a_power_cut_at_every_operation_of_an_upgrade() {
    let upgrade = |s: &Store| {
        let _ = s.typed_stream::<Order>("orders");
    };
    cut_at_every_operation(true, &upgrade, &id("shop.Order", 2, "postcard"));
}

#[test]
fn an_io_error_at_every_operation_of_a_typed_open() {
    for typed_first in [false, true] {
        let ops = count_ops(typed_first, &|s| {
            s.typed_stream::<Order>("orders").unwrap();
        });
        let old = typed_first.then(|| id("shop.Order", 1, "postcard"));
        let new = id("shop.Order", 2, "postcard");
        for at in 1..=ops {
            let fs = SimFs::new();
            let store = build(&fs, typed_first);
            fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
            let r = store.typed_stream::<Order>("orders");
            let what = format!("EIO at {at}/{ops}, typed first {typed_first}: {r:?}");
            if r.is_ok() {
                assert_eq!(recorded(&fs, "orders").as_ref(), Some(&new), "{what}");
            }
            drop(r);
            drop(store);
            check_after_cut(
                &fs.power_cut(CutMode::DropUnsynced),
                old.clone(),
                &new,
                &what,
            );
        }
    }
}

#[test]
fn a_typed_open_of_a_closed_store_writes_nothing() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store.stream("orders").unwrap();
    store.close().unwrap();
    assert!(matches!(TypedStream::<Order>::open(&s), Err(Error::Closed)));
    assert_eq!(recorded(&fs, "orders"), None);
}

/// A typed open in the model: which type, which version, which codec.
#[derive(Debug, Clone, Copy)]
enum Open {
    OrderV1,
    Order,
    Invoice,
    OrderOther,
    Reopen,
}

fn opens() -> impl Strategy<Value = Open> {
    prop_oneof![
        Just(Open::OrderV1),
        Just(Open::Order),
        Just(Open::Invoice),
        Just(Open::OrderOther),
        Just(Open::Reopen),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    /// The recorded identity follows the model: the first typed open sets
    /// it, another name or codec is refused, a newer version raises it, an
    /// older one is refused; untouched by refusals and by reopens.
    #[test]
    fn the_identity_follows_the_model(steps in proptest::collection::vec(opens(), 1..16)) {
        let fs = SimFs::new();
        let mut store = open(&fs);
        store.stream("orders").unwrap();
        let mut model: Option<TypeIdentity> = None;
        for step in steps {
            let (wanted, result) = match step {
                Open::Reopen => {
                    store.close().unwrap();
                    store = open(&fs);
                    prop_assert_eq!(&recorded(&fs, "orders"), &model);
                    continue;
                }
                Open::OrderV1 => (id("shop.Order", 1, "postcard"), store.typed_stream::<OrderV1>("orders").map(drop)),
                Open::Order => (id("shop.Order", 2, "postcard"), store.typed_stream::<Order>("orders").map(drop)),
                Open::Invoice => (id("shop.Invoice", 1, "postcard"), store.typed_stream::<Invoice>("orders").map(drop)),
                Open::OrderOther => (
                    id("shop.Order", 2, "other"),
                    TypedStream::<Order, Other>::open(&store.stream("orders").unwrap()).map(drop),
                ),
            };
            let expect_ok = match &model {
                None => true,
                Some(m) => m.name == wanted.name && m.codec == wanted.codec && m.version <= wanted.version,
            };
            prop_assert_eq!(result.is_ok(), expect_ok, "{:?} on {:?}: {:?}", step, model, result);
            if let Err(e) = &result {
                let refused = matches!(e, Error::TypeMismatch { .. });
                prop_assert!(refused, "{}", e);
            }
            if expect_ok {
                model = Some(wanted);
            }
            prop_assert_eq!(&recorded(&fs, "orders"), &model);
        }
    }
}

/// Attributes set on an owned or typed message reach the record as they
/// would from a `Message`: a typed message with an id is deduplicated, one
/// scheduled for later is not delivered yet, and an owned one converted
/// back keeps them all.
#[test]
fn owned_and_typed_messages_carry_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), spool::Options::default()).unwrap();
    let orders = store.typed_stream::<OrderV1>("orders").unwrap();
    let o = OrderV1 {
        id: 1,
        item: "tea".into(),
    };
    let m = spool::TypedMessage::new(&o)
        .unwrap()
        .id("order-1")
        .group("table-7");
    let first = orders.send_message(&m).unwrap();
    assert_eq!(orders.send_message(&m).unwrap(), first, "deduplicated");
    let later = spool::TypedMessage::new(&o)
        .unwrap()
        .deliver_after(Duration::from_secs(3600))
        .ttl(Duration::from_secs(7200));
    orders.send_message(&later).unwrap();
    let r = orders.stream().read(first).unwrap().unwrap();
    assert_eq!(r.message_id(), Some(&b"order-1"[..]));
    assert_eq!(r.group(), Some(&b"table-7"[..]));
    let r = orders.stream().read(first + 1).unwrap().unwrap();
    assert!(r.deliver_at().is_some() && r.expires_at().is_some());
    let c = orders.consumer("c").unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.value().unwrap(), &o);
    d.ack().unwrap();
    assert!(
        c.try_receive().unwrap().is_none(),
        "the scheduled one waits"
    );

    let owned = OwnedMessage::new(b"x".to_vec())
        .id("k")
        .group("g")
        .ttl(Duration::from_secs(5));
    let back = OwnedMessage::from(owned.as_message());
    assert_eq!(back, owned);
    let plain = store.stream("plain").unwrap();
    let at = plain.send_message(owned.as_message()).unwrap();
    assert_eq!(plain.send_batch([&owned]).unwrap(), vec![at]);
    assert_eq!(plain.stats().messages(), 1);
}
