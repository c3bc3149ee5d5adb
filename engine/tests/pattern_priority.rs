//! Goal: priority queue: the highest non-empty level is served first, FIFO
//! within a level; with a starvation limit, a waiting lower level is served
//! once after that many higher deliveries.
//!
//! Method: fill three levels, drain, check the order.

pub mod common;

use common::scratch_store;
use spool::{ConsumerConfig, Message, StreamConfig};

fn setup() -> (tempfile::TempDir, spool::Stream) {
    let (dir, store) = scratch_store();
    let s = store
        .create_stream("p", StreamConfig::default().priorities(3))
        .unwrap();
    for i in 0..4u8 {
        for p in 0..3u8 {
            s.send_message(Message::new(&[p, i]).priority(p)).unwrap();
        }
    }
    (dir, s)
}

#[test]
fn highest_level_first_fifo_within() {
    let (_d, s) = setup();
    let c = s.consumer("c").unwrap();
    let mut got = Vec::new();
    while let Some(d) = c.try_receive().unwrap() {
        got.push((d.payload()[0], d.payload()[1]));
        assert_eq!(d.priority(), d.payload()[0]);
        d.ack().unwrap();
    }
    let want: Vec<(u8, u8)> = [2u8, 1, 0]
        .iter()
        .flat_map(|&p| (0..4).map(move |i| (p, i)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn starvation_limit_serves_lower_levels() {
    let (_d, s) = setup();
    let c = s
        .consumer_with("c", ConsumerConfig::default().starvation_limit(2))
        .unwrap();
    let mut levels = Vec::new();
    while let Some(d) = c.try_receive().unwrap() {
        levels.push(d.priority());
        d.ack().unwrap();
    }
    assert_eq!(levels.len(), 12);
    // Two from the top, then one from the next waiting level, and so on.
    assert_eq!(&levels[..3], &[2, 2, 1]);
    // Level 0 is not left for last: it is served while level 1 still has
    // messages (strict priority would serve it only after all of them).
    let first_zero = levels.iter().position(|&l| l == 0).unwrap();
    let last_one = levels.iter().rposition(|&l| l == 1).unwrap();
    assert!(first_zero < last_one, "{levels:?}");
}
