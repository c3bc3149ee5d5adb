//! How Spool headers travel as NATS headers.
//!
//! A Spool header is a UTF-8 name (1..=255 bytes) and a value of any bytes;
//! a NATS header is an ASCII token and a line of text. A header that NATS
//! carries as it is goes as it is. One it cannot carry exactly, or one
//! that NATS or the bridge would take as its own, goes encoded, as a value
//! of [`ENCODED`]: `base64url(name) "." base64url(value)` (no padding),
//! one value per such header. Encoded are:
//!
//! - a name that is not a NATS header name (non-ASCII, ':', spaces or
//!   control characters), or that starts with `Nats-` or `Spool-Bridge-`
//!   (any case: JetStream acts on `Nats-*` headers, `Nats-Rollup` would
//!   purge the subject),
//! - a value that is not UTF-8, holds CR or LF or another control
//!   character, is empty, or starts or ends with whitespace (NATS trims
//!   it).
//!
//! [`decode`] turns a NATS header map back into the Spool headers, so
//! Spool → NATS → Spool gives back the same names and values (the values
//! of one name in their order; NATS keeps no order between names).

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::str::FromStr;

/// Header: a Spool header NATS cannot carry as it is (see the module).
pub const ENCODED: &str = "Spool-Bridge-Encoded";

fn carried(name: &str, value: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("nats-") || lower.starts_with("spool-bridge-") {
        return None;
    }
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || text.trim() != text || text.chars().any(char::is_control) {
        return None;
    }
    Some((
        HeaderName::from_str(name).ok()?,
        HeaderValue::from_str(text).ok()?,
    ))
}

/// Adds the headers to `map`, each as it is or encoded.
pub fn encode<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>, map: &mut HeaderMap) {
    for (name, value) in headers {
        match carried(name, value) {
            Some((n, v)) => map.append(n, v),
            None => {
                let text = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(name),
                    URL_SAFE_NO_PAD.encode(value)
                );
                // Base64url and '.' are always a valid header value.
                if let Ok(v) = HeaderValue::from_str(&text) {
                    map.append(ENCODED, v);
                }
            }
        }
    }
}

/// The Spool headers of a NATS header map: [`ENCODED`] values decoded,
/// every other header as it is. An [`ENCODED`] value that does not decode
/// (not written by a bridge) is kept as it is.
pub fn decode(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, values) in map.iter() {
        let encoded = AsRef::<str>::as_ref(name) == ENCODED;
        for v in values {
            let pair = encoded
                .then(|| decode_one(v.as_str()))
                .flatten()
                .unwrap_or_else(|| (name.to_string(), v.as_str().as_bytes().to_vec()));
            out.push(pair);
        }
    }
    out
}

fn decode_one(text: &str) -> Option<(String, Vec<u8>)> {
    let (n, v) = text.split_once('.')?;
    let name = String::from_utf8(URL_SAFE_NO_PAD.decode(n).ok()?).ok()?;
    if name.is_empty() {
        return None;
    }
    Some((name, URL_SAFE_NO_PAD.decode(v).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_what_nats_cannot_carry() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("plain", b"value"),
            ("binary", &[0xff, 0, b'\r', b'\n']),
            ("a:b", b"colon in the name"),
            ("caf\u{e9}", b"non-ASCII name"),
            ("Nats-Rollup", b"all"),
            ("spool-bridge-origin", b"not ours"),
            ("padded", b" x "),
            ("empty", b""),
            ("plain", b"second value"),
        ];
        let mut map = HeaderMap::new();
        encode(headers.iter().copied(), &mut map);
        assert!(map.get("Nats-Rollup").is_none());
        assert_eq!(map.get("plain").map(|v| v.as_str()), Some("value"));
        let mut back = decode(&map);
        back.sort();
        let mut want: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        want.sort();
        assert_eq!(back, want);
    }

    #[test]
    fn a_foreign_encoded_value_is_kept_as_it_is() {
        let mut map = HeaderMap::new();
        map.insert(ENCODED, "not base64!");
        assert_eq!(
            decode(&map),
            vec![(ENCODED.to_string(), b"not base64!".to_vec())]
        );
    }
}
