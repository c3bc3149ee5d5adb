//! Message headers: a small ordered list of `key -> value` pairs.
//!
//! Encoding (the record's `headers` section), repeated until `hdr_len` bytes are used:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `key_len` (1..=255) |
//! | key_len | key, UTF-8 |
//! | 2 | `value_len` (u16 LE) |
//! | value_len | value, arbitrary bytes |

/// Largest encoded header section of one message.
pub const HEADERS_BYTES_MAX: usize = u16::MAX as usize;
/// Longest header key.
pub const KEY_BYTES_MAX: usize = u8::MAX as usize;

/// Why a header section failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// An entry runs past the end of the section.
    Truncated,
    /// A key is empty.
    EmptyKey,
    /// A key is not UTF-8.
    KeyNotUtf8,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated => write!(f, "a header runs past the end of its section"),
            HeaderError::EmptyKey => write!(f, "a header key is empty"),
            HeaderError::KeyNotUtf8 => write!(f, "a header key is not UTF-8"),
        }
    }
}

/// Size of the encoded form of `pairs`, or `None` if a key is empty or too
/// long, a value is too long, or the whole section exceeds [`HEADERS_BYTES_MAX`].
pub fn encoded_len<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<usize> {
    let mut total = 0usize;
    for (k, v) in pairs {
        if k.is_empty() || k.len() > KEY_BYTES_MAX || v.len() > u16::MAX as usize {
            return None;
        }
        total += 1 + k.len() + 2 + v.len();
        if total > HEADERS_BYTES_MAX {
            return None;
        }
    }
    Some(total)
}

/// Appends the encoded form of one pair to `out`. The caller validated it with
/// [`encoded_len`].
#[cfg_attr(
    not(feature = "sim"),
    expect(
        dead_code,
        reason = "codec API of the fuzz targets and tests (public with `sim`)"
    )
)]
pub fn encode_pair(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(key.len() as u8);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// Writes the encoded form of `pairs` into `out`, which is exactly as long
/// as [`encoded_len`] said (the caller checked them with it).
pub fn encode_into<'a>(out: &mut [u8], pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    let mut at = 0;
    for (k, v) in pairs {
        out[at] = k.len() as u8;
        let key_end = at + 1 + k.len();
        out[at + 1..key_end].copy_from_slice(k.as_bytes());
        out[key_end..key_end + 2].copy_from_slice(&(v.len() as u16).to_le_bytes());
        out[key_end + 2..key_end + 2 + v.len()].copy_from_slice(v);
        at = key_end + 2 + v.len();
    }
    debug_assert_eq!(at, out.len());
}

/// Iterator over an encoded header section. Yields an error once, then stops.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> HeaderIter<'a> {
    /// Iterates over `section`.
    pub fn new(section: &'a [u8]) -> Self {
        HeaderIter {
            rest: section,
            failed: false,
        }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a str, &'a [u8]), HeaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = decode_one(self.rest);
        match r {
            Ok((k, v, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok((k, v)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn decode_one(b: &[u8]) -> Result<(&str, &[u8], usize), HeaderError> {
    let key_len = *b.first().ok_or(HeaderError::Truncated)? as usize;
    if key_len == 0 {
        return Err(HeaderError::EmptyKey);
    }
    let key_end = 1 + key_len;
    let key = b.get(1..key_end).ok_or(HeaderError::Truncated)?;
    let key = std::str::from_utf8(key).map_err(|_| HeaderError::KeyNotUtf8)?;
    let vl = b.get(key_end..key_end + 2).ok_or(HeaderError::Truncated)?;
    let value_len = u16::from_le_bytes([vl[0], vl[1]]) as usize;
    let value_start = key_end + 2;
    let value = b
        .get(value_start..value_start + value_len)
        .ok_or(HeaderError::Truncated)?;
    Ok((key, value, value_start + value_len))
}

/// Checks that a whole section decodes.
pub fn validate(section: &[u8]) -> Result<(), HeaderError> {
    for item in HeaderIter::new(section) {
        item?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&str, &[u8])> = vec![("a", b"1"), ("reply-to", b"replies"), ("k", b"")];
        let n = encoded_len(pairs.iter().copied()).unwrap();
        let mut out = Vec::new();
        for (k, v) in &pairs {
            encode_pair(&mut out, k, v);
        }
        assert_eq!(out.len(), n);
        let mut into = vec![0u8; n];
        encode_into(&mut into, pairs.iter().copied());
        assert_eq!(into, out);
        let back: Vec<_> = HeaderIter::new(&out).map(|r| r.unwrap()).collect();
        assert_eq!(back, pairs);
    }

    #[test]
    fn rejects_bad_keys_and_sizes() {
        assert_eq!(encoded_len([("", &b"x"[..])]), None);
        let long = "k".repeat(256);
        assert_eq!(encoded_len([(long.as_str(), &b"x"[..])]), None);
        let big = vec![0u8; 70_000];
        assert_eq!(encoded_len([("k", big.as_slice())]), None);
    }

    #[test]
    fn truncated_sections_are_errors_not_panics() {
        let mut out = Vec::new();
        encode_pair(&mut out, "key", b"value");
        for cut in 0..out.len() {
            let r = validate(&out[..cut]);
            if cut == 0 {
                assert!(r.is_ok());
            } else {
                assert!(r.is_err(), "cut at {cut} decoded");
            }
        }
        assert_eq!(validate(&[0]), Err(HeaderError::EmptyKey));
        assert_eq!(validate(&[1, 0xff, 0, 0]), Err(HeaderError::KeyNotUtf8));
    }
}
