//! Typed messages: a serde struct sent and received without serde glue,
//! the type's identity recorded with the stream and checked, a message
//! that does not decode dead-lettered instead of stopping the worker, and
//! the type evolved (a field added, the version bumped, old messages read
//! through `upgrade`) across a restart.
//!
//! ```text
//! cargo run --release --example typed               # a temporary store
//! cargo run --release --example typed -- my-store   # ./my-store, a new directory
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use serde::{Deserialize, Serialize};
use spool::{Codec, CodecError, ConsumerConfig, Error, MessageType, Options, Store, TypedMessage};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The order as the first release wrote it. Kept unchanged after the
/// change below, to read what that release wrote.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct OrderV1 {
    id: u64,
    item: String,
}

impl MessageType for OrderV1 {
    const NAME: &'static str = "shop.Order";
    const VERSION: u32 = 1;
}

/// The order now: a quantity added, the version bumped.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
}

impl MessageType for Order {
    const NAME: &'static str = "shop.Order";
    const VERSION: u32 = 2;

    fn upgrade<C: Codec>(from_version: u32, body: &[u8]) -> std::result::Result<Self, CodecError> {
        match from_version {
            1 => {
                let old: OrderV1 = C::decode(body)?;
                Ok(Order {
                    id: old.id,
                    item: old.item,
                    quantity: 1,
                })
            }
            v => Err(CodecError::new(format!("no upgrade from version {v}"))),
        }
    }
}

/// Something else entirely.
#[derive(Serialize, Deserialize)]
struct Invoice {
    id: u64,
}

impl MessageType for Invoice {
    const NAME: &'static str = "shop.Invoice";
    const VERSION: u32 = 1;
}

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);

    println!("release 1: send and receive orders");
    {
        let store = Store::open(&dir, Options::default())?;
        let orders = store.typed_stream::<OrderV1>("orders")?;
        let base = orders.stream().stats().messages();
        orders.send(&OrderV1 {
            id: 1,
            item: "espresso".into(),
        })?;
        let urgent = TypedMessage::new(&OrderV1 {
            id: 2,
            item: "cortado".into(),
        })?
        .header("table", "7");
        orders.send_message(&urgent)?;
        // A message another program wrote with the bytes API, wrongly.
        orders.stream().send(b"{\"id\": 3}")?;
        check(
            orders.stream().stats().messages() == base + 3,
            "three messages in the stream",
        )?;
        check(
            matches!(
                store.typed_stream::<Invoice>("orders"),
                Err(Error::TypeMismatch { .. })
            ),
            "the stream is of shop.Order: opening it as shop.Invoice is TypeMismatch",
        )?;
        store.close()?;
    }

    println!("release 2: the type gained a field; old messages are upgraded");
    let store = Store::open(&dir, Options::default())?;
    let orders = store.typed_stream::<Order>("orders")?;
    orders.send(&Order {
        id: 4,
        item: "tea".into(),
        quantity: 3,
    })?;
    let config = ConsumerConfig::default().dead_letter("orders.dead");
    let kitchen = orders.consumer_with("kitchen", config)?;
    let mut served = Vec::new();
    while let Some(d) = kitchen.receive(Duration::from_millis(100))? {
        match d.value() {
            Ok(order) => {
                println!(
                    "  order {} ({} x {}, written as version {:?}, table {:?})",
                    order.id,
                    order.quantity,
                    order.item,
                    d.schema_version(),
                    d.header("table").map(String::from_utf8_lossy),
                );
                served.push((order.id, order.quantity));
                d.ack()?;
            }
            Err(e) => {
                println!("  cannot decode: {e}");
                d.dead_letter(Some("not a shop.Order"))?;
            }
        }
    }
    check(
        served.ends_with(&[(1, 1), (2, 1), (4, 3)]),
        "version 1 orders read with quantity 1, the version 2 order as sent",
    )?;
    let dead = store.stream("orders.dead")?;
    check(
        dead.iter_from(0)
            .any(|r| r.is_ok_and(|r| r.payload() == b"{\"id\": 3}")),
        "the message that did not decode went to orders.dead; the worker went on",
    )?;
    check(
        matches!(
            store.typed_stream::<OrderV1>("orders"),
            Err(Error::TypeMismatch { newer: true, .. })
        ),
        "release 1 cannot open the stream any more: it could not read version 2",
    )?;
    drop((kitchen, orders, dead));
    store.close()?;
    println!("ok");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result {
    if !ok {
        return Err(format!("check failed: {what}").into());
    }
    println!("  ok: {what}");
    Ok(())
}
