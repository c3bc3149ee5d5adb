//! Payloads that carry their producer and sequence number, and the checks
//! that every message comes back exactly once and in order.
//!
//! Layout of a payload of `size` bytes: the sequence number (u64, little
//! endian), the producer (u32), filler, and the sequence number again in the
//! last 8 bytes, so that a truncated, shifted or mixed-up payload is caught
//! by comparing the two copies.

use crate::engine::Result;

/// Smallest payload that holds both stamps.
pub const MIN_SIZE: usize = 20;

/// A payload of `size` bytes with filler (not all zeros, not all alike),
/// ready to be stamped.
pub fn blank(size: usize) -> Vec<u8> {
    assert!(size >= MIN_SIZE, "payloads hold at least {MIN_SIZE} bytes");
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// Writes `producer` and `seq` into a payload made by [`blank`].
pub fn stamp(payload: &mut [u8], producer: u32, seq: u64) {
    let n = payload.len();
    payload[..8].copy_from_slice(&seq.to_le_bytes());
    payload[8..12].copy_from_slice(&producer.to_le_bytes());
    payload[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// Reads `(producer, seq)` back from a received payload, checking its size
/// and that both copies of the sequence number agree.
pub fn parse(payload: &[u8], size: usize) -> Result<(u32, u64)> {
    if payload.len() != size {
        return Err(format!(
            "received a payload of {} bytes; every message sent had {size}",
            payload.len()
        )
        .into());
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (head, tail) = (word(0), word(size - 8));
    if head != tail {
        return Err(format!(
            "received a damaged payload: sequence number {head} at its start, {tail} at its end"
        )
        .into());
    }
    let mut p = [0u8; 4];
    p.copy_from_slice(&payload[8..12]);
    Ok((u32::from_le_bytes(p), head))
}

/// Checks messages of one producer: each of `0..n` exactly once, in order.
pub struct Fifo {
    size: usize,
    n: u64,
    next: u64,
}

impl Fifo {
    /// Expects `n` payloads of `size` bytes, sequence numbers `0..n`.
    pub fn new(n: u64, size: usize) -> Fifo {
        Fifo { size, n, next: 0 }
    }

    /// Checks the next received payload.
    pub fn see(&mut self, payload: &[u8]) -> Result<()> {
        let (producer, seq) = parse(payload, self.size)?;
        if producer != 0 {
            return Err(format!("received a message of producer {producer}; only 0 sent").into());
        }
        if seq != self.next {
            return Err(out_of_order(self.next, seq, self.n).into());
        }
        self.next += 1;
        Ok(())
    }

    /// Checks that all `n` arrived.
    pub fn finish(&self) -> Result<()> {
        if self.next != self.n {
            return Err(format!(
                "lost messages: received {} of {}, the first missing is {}",
                self.next, self.n, self.next
            )
            .into());
        }
        Ok(())
    }
}

/// Why a sequence number is not the expected one.
fn out_of_order(expected: u64, got: u64, n: u64) -> String {
    if got >= n {
        format!("received sequence number {got}, but only 0..{n} were sent")
    } else if got < expected {
        format!(
            "duplicate or reordered: received {got} after {}",
            expected - 1
        )
    } else {
        format!("lost or reordered: expected {expected}, received {got}")
    }
}

/// Checks messages of many producers: each producer's `0..per` exactly
/// once and in its own order; producers may interleave.
pub struct PerProducer {
    size: usize,
    per: u64,
    next: Vec<u64>,
}

impl PerProducer {
    /// Expects `producers` producers of `per` payloads of `size` bytes each.
    pub fn new(producers: usize, per: u64, size: usize) -> PerProducer {
        PerProducer {
            size,
            per,
            next: vec![0; producers],
        }
    }

    /// Checks the next received payload.
    pub fn see(&mut self, payload: &[u8]) -> Result<()> {
        let (producer, seq) = parse(payload, self.size)?;
        let count = self.next.len();
        let Some(next) = self.next.get_mut(producer as usize) else {
            return Err(
                format!("received a message of producer {producer}; only {count} sent").into(),
            );
        };
        if seq != *next {
            return Err(format!(
                "producer {producer}: {}",
                out_of_order(*next, seq, self.per)
            )
            .into());
        }
        *next += 1;
        Ok(())
    }

    /// Checks that every producer's messages all arrived.
    pub fn finish(&self) -> Result<()> {
        for (p, &got) in self.next.iter().enumerate() {
            if got != self.per {
                return Err(format!(
                    "lost messages: producer {p}: received {got} of {}",
                    self.per
                )
                .into());
            }
        }
        Ok(())
    }
}

/// Checks messages of one producer spread over competing receivers: each of
/// `0..n` received exactly once overall, and each receiver's share in
/// increasing order (the oldest available message is handed out first).
/// Receivers collect sequence numbers with [`parse`].
pub struct ExactlyOnce {
    seen: Vec<bool>,
}

impl ExactlyOnce {
    /// Expects sequence numbers `0..n`.
    pub fn new(n: u64) -> ExactlyOnce {
        ExactlyOnce {
            seen: vec![false; n as usize],
        }
    }

    /// Checks the sequence numbers one receiver got, in the order it got them.
    pub fn receiver(&mut self, which: usize, seqs: &[u64]) -> Result<()> {
        let n = self.seen.len() as u64;
        let mut last = None;
        for &seq in seqs {
            if last.is_some_and(|l| seq <= l) {
                return Err(format!(
                    "receiver {which}: received {seq} after {}",
                    last.unwrap_or_default()
                )
                .into());
            }
            last = Some(seq);
            let Some(slot) = self.seen.get_mut(seq as usize) else {
                return Err(format!(
                    "receiver {which}: received sequence number {seq}, only 0..{n} were sent"
                )
                .into());
            };
            if std::mem::replace(slot, true) {
                return Err(format!("duplicate: {seq} was received twice").into());
            }
        }
        Ok(())
    }

    /// Checks that every message arrived.
    pub fn finish(&self) -> Result<()> {
        let missing = self.seen.iter().filter(|s| !**s).count();
        if let Some(first) = self.seen.iter().position(|s| !s) {
            return Err(format!(
                "lost messages: {missing} of {} never received, the first is {first}",
                self.seen.len()
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(producer: u32, seq: u64) -> Vec<u8> {
        let mut p = blank(64);
        stamp(&mut p, producer, seq);
        p
    }

    fn err(r: Result<()>) -> String {
        r.expect_err("the check should fail").to_string()
    }

    #[test]
    fn fifo_accepts_all_in_order_and_catches_loss_duplicates_and_damage() {
        let mut f = Fifo::new(3, 64);
        for seq in 0..3 {
            f.see(&msg(0, seq)).expect("in order");
        }
        f.finish().expect("complete");

        let mut f = Fifo::new(3, 64);
        f.see(&msg(0, 0)).expect("first");
        assert!(err(f.see(&msg(0, 0))).contains("duplicate"));
        assert!(err(f.see(&msg(0, 2))).contains("lost or reordered"));
        assert!(err(f.see(&msg(0, 7))).contains("only 0..3"));
        assert!(err(f.finish()).contains("lost messages"));

        let mut damaged = msg(0, 1);
        damaged[63] ^= 1;
        assert!(err(f.see(&damaged)).contains("damaged"));
        assert!(err(f.see(&msg(0, 1)[..32])).contains("32 bytes"));
    }

    #[test]
    fn per_producer_allows_interleaving_but_not_reordering() {
        let mut c = PerProducer::new(2, 2, 64);
        for (p, s) in [(0, 0), (1, 0), (1, 1), (0, 1)] {
            c.see(&msg(p, s)).expect("each producer in order");
        }
        c.finish().expect("complete");

        let mut c = PerProducer::new(2, 2, 64);
        assert!(err(c.see(&msg(1, 1))).contains("producer 1"));
        assert!(err(c.see(&msg(5, 0))).contains("producer 5"));
        c.see(&msg(0, 0)).expect("first of producer 0");
        assert!(err(c.finish()).contains("lost messages"));
    }

    #[test]
    fn exactly_once_across_receivers() {
        let mut c = ExactlyOnce::new(4);
        c.receiver(0, &[0, 2]).expect("share 0");
        c.receiver(1, &[1, 3]).expect("share 1");
        c.finish().expect("complete");

        let mut c = ExactlyOnce::new(4);
        c.receiver(0, &[0, 1]).expect("share 0");
        assert!(err(c.receiver(1, &[1])).contains("twice"));
        assert!(err(c.receiver(2, &[3, 2])).contains("after"));
        assert!(err(c.finish()).contains("lost messages"));
    }
}
