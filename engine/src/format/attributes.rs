//! Message attributes: when a message may be delivered, when it expires,
//! its deduplication id and its group. They are the first headers of a
//! record whose flags have [`super::record::FLAG_ATTRIBUTES`], in this
//! order, each present or not:
//!
//! | key | value |
//! |---|---|
//! | `spool-deliver-at` | microseconds since the Unix epoch, decimal ASCII |
//! | `spool-expires-at` | microseconds since the Unix epoch, decimal ASCII |
//! | `spool-message-id` | 1..=255 bytes |
//! | `spool-group` | 1..=255 bytes |
//!
//! Stored as headers, a record with attributes reads like any other to
//! code that does not know them (`segment-tool dump` shows them as
//! headers); the flag tells readers to look, so that a record without
//! attributes costs a receive nothing but a test of its flags. A header of
//! one of these names on a record without the flag is an ordinary header.

use super::headers::{self, HeaderIter};
use crate::message::attribute_headers::{DELIVER_AT, EXPIRES_AT, GROUP, MESSAGE_ID};

/// Longest message id or group name.
pub const ATTRIBUTE_BYTES_MAX: usize = 255;

/// The attributes of one message (all optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// Not delivered before this time (µs since the Unix epoch).
    pub deliver_at_us: Option<u64>,
    /// Not delivered at or after this time (µs since the Unix epoch).
    pub expires_at_us: Option<u64>,
    /// Deduplication id.
    pub message_id: Option<&'a [u8]>,
    /// Message group (ordering key).
    pub group: Option<&'a [u8]>,
}

/// Why an attribute section failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeError {
    /// The header section itself is malformed.
    Headers(headers::HeaderError),
    /// A time is not a decimal number of microseconds.
    BadTime,
    /// An id or group is empty or longer than [`ATTRIBUTE_BYTES_MAX`].
    BadLength,
    /// The flag is set but no attribute is present.
    Empty,
}

impl std::fmt::Display for AttributeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttributeError::Headers(e) => write!(f, "attribute headers: {e}"),
            AttributeError::BadTime => {
                write!(
                    f,
                    "an attribute time is not a decimal number of microseconds"
                )
            }
            AttributeError::BadLength => write!(
                f,
                "a message id or group is empty or longer than {ATTRIBUTE_BYTES_MAX} bytes"
            ),
            AttributeError::Empty => write!(f, "the attribute flag is set but no attribute is"),
        }
    }
}

/// Digits of `v` in decimal.
fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes `v` in decimal into `out` (exactly [`digits`] bytes).
fn write_decimal(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

fn pair_len(key: &str, value_len: usize) -> usize {
    1 + key.len() + 2 + value_len
}

impl<'a> Attributes<'a> {
    /// Whether no attribute is set (the record then carries no flag).
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }

    /// Whether the id and group lengths are valid.
    pub fn lengths_valid(&self) -> bool {
        [self.message_id, self.group]
            .into_iter()
            .flatten()
            .all(|v| !v.is_empty() && v.len() <= ATTRIBUTE_BYTES_MAX)
    }

    /// Bytes of the encoded attribute headers.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        if let Some(t) = self.deliver_at_us {
            n += pair_len(DELIVER_AT, digits(t));
        }
        if let Some(t) = self.expires_at_us {
            n += pair_len(EXPIRES_AT, digits(t));
        }
        if let Some(v) = self.message_id {
            n += pair_len(MESSAGE_ID, v.len());
        }
        if let Some(v) = self.group {
            n += pair_len(GROUP, v.len());
        }
        n
    }

    /// Writes the attribute headers into the start of `out`; returns the
    /// bytes written ([`Attributes::encoded_len`]). The caller checked the
    /// lengths ([`Attributes::lengths_valid`]).
    pub fn encode_into(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |key: &str, len: usize, fill: &dyn Fn(&mut [u8])| {
            out[at] = key.len() as u8;
            let key_end = at + 1 + key.len();
            out[at + 1..key_end].copy_from_slice(key.as_bytes());
            out[key_end..key_end + 2].copy_from_slice(&(len as u16).to_le_bytes());
            fill(&mut out[key_end + 2..key_end + 2 + len]);
            at = key_end + 2 + len;
        };
        if let Some(t) = self.deliver_at_us {
            put(DELIVER_AT, digits(t), &|o| write_decimal(o, t));
        }
        if let Some(t) = self.expires_at_us {
            put(EXPIRES_AT, digits(t), &|o| write_decimal(o, t));
        }
        if let Some(v) = self.message_id {
            put(MESSAGE_ID, v.len(), &|o| o.copy_from_slice(v));
        }
        if let Some(v) = self.group {
            put(GROUP, v.len(), &|o| o.copy_from_slice(v));
        }
        at
    }

    /// Reads the attributes at the start of a header section of a record
    /// with the attribute flag: the leading headers named as in the table
    /// above, in its order.
    pub fn decode(section: &'a [u8]) -> Result<Attributes<'a>, AttributeError> {
        let mut a = Attributes::default();
        let mut next_key = 0;
        let keys = [DELIVER_AT, EXPIRES_AT, MESSAGE_ID, GROUP];
        for item in HeaderIter::new(section) {
            let (k, v) = item.map_err(AttributeError::Headers)?;
            let Some(i) = keys[next_key..].iter().position(|&name| name == k) else {
                break;
            };
            next_key += i + 1;
            match keys[next_key - 1] {
                DELIVER_AT => {
                    a.deliver_at_us = Some(parse_decimal(v).ok_or(AttributeError::BadTime)?)
                }
                EXPIRES_AT => {
                    a.expires_at_us = Some(parse_decimal(v).ok_or(AttributeError::BadTime)?)
                }
                MESSAGE_ID => a.message_id = Some(v),
                _ => a.group = Some(v),
            }
            if next_key == keys.len() {
                break;
            }
        }
        if a.is_empty() {
            return Err(AttributeError::Empty);
        }
        if !a.lengths_valid() {
            return Err(AttributeError::BadLength);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_combination() {
        for mask in 1u8..16 {
            let a = Attributes {
                deliver_at_us: (mask & 1 != 0).then_some(1_700_000_000_000_000),
                expires_at_us: (mask & 2 != 0).then_some(9),
                message_id: (mask & 4 != 0).then_some(&b"order-17"[..]),
                group: (mask & 8 != 0).then_some(&b"customer-4"[..]),
            };
            let mut out = vec![0u8; a.encoded_len() + 6];
            let n = a.encode_into(&mut out);
            assert_eq!(n, a.encoded_len());
            // Ordinary headers after the attributes are not attributes.
            headers::encode_into(&mut out[n..], [("k", &b"v1"[..])]);
            assert!(headers::validate(&out).is_ok());
            assert_eq!(Attributes::decode(&out), Ok(a), "mask {mask}");
        }
    }

    #[test]
    fn decimal_edges() {
        for v in [0, 1, 9, 10, 99, 100, u64::MAX] {
            let mut b = vec![0u8; digits(v)];
            write_decimal(&mut b, v);
            assert_eq!(b, v.to_string().as_bytes());
            assert_eq!(parse_decimal(&b), Some(v));
        }
        for bad in [&b""[..], b"01", b"1a", b"18446744073709551616", b"-1"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn damaged_sections_are_errors() {
        assert_eq!(Attributes::decode(&[]), Err(AttributeError::Empty));
        let mut out = Vec::new();
        headers::encode_pair(&mut out, DELIVER_AT, b"12x");
        assert_eq!(Attributes::decode(&out), Err(AttributeError::BadTime));
        let mut out = Vec::new();
        headers::encode_pair(&mut out, GROUP, b"");
        assert_eq!(Attributes::decode(&out), Err(AttributeError::BadLength));
        // Out of order: the second is an ordinary header.
        let mut out = Vec::new();
        headers::encode_pair(&mut out, GROUP, b"g");
        headers::encode_pair(&mut out, DELIVER_AT, b"5");
        let a = Attributes::decode(&out).unwrap();
        assert_eq!((a.group, a.deliver_at_us), (Some(&b"g"[..]), None));
        assert!(matches!(
            Attributes::decode(&[3, b'a']),
            Err(AttributeError::Headers(_))
        ));
    }
}
