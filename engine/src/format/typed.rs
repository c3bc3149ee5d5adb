//! Typed messages (DESIGN.md 3.9): the body of a stream's
//! `message_type.meta` (the identity of the type its typed handles send),
//! and the envelope in front of every typed payload.
//!
//! `message_type.meta` is framed (`format::meta`, magic
//! [`MESSAGE_TYPE_MAGIC`](super::meta::MESSAGE_TYPE_MAGIC)); its body:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | schema version, u32 LE |
//! | 4 | 2 | type name length `n`, 1..=[`TYPE_NAME_BYTES_MAX`] |
//! | 6 | n | type name, UTF-8 |
//! | 6+n | 1 | codec name length `m`, 1..=[`CODEC_NAME_BYTES_MAX`] |
//! | 7+n | m | codec name, UTF-8 |
//!
//! and nothing after it: a body has exactly one encoding.
//!
//! The envelope of a typed payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | envelope version ([`ENVELOPE_VERSION`]) |
//! | 1 | 1..=5 | schema version of the body, LEB128 varint in its shortest form, at most `u32::MAX` |
//! | … | … | the codec's bytes |

use super::{get_u16, get_u32};

/// Version of the envelope this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Longest type name.
pub const TYPE_NAME_BYTES_MAX: usize = 1024;
/// Longest codec name.
pub const CODEC_NAME_BYTES_MAX: usize = 64;

/// The identity of a stream's message type, as `message_type.meta` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeIdentity {
    /// The type's name (`MessageType::NAME`).
    pub name: String,
    /// Its schema version (`MessageType::VERSION`).
    pub version: u32,
    /// The codec's name (`Codec::NAME`).
    pub codec: String,
}

impl std::fmt::Display for TypeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` version {} ({})",
            self.name, self.version, self.codec
        )
    }
}

/// Why a `message_type.meta` body or an envelope does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedDecodeError {
    /// The bytes end before a field does, or go on after the last.
    BadLength,
    /// A name is empty, too long or not UTF-8.
    BadName,
    /// An envelope version this build does not know.
    EnvelopeVersion(u8),
    /// A schema version that is no shortest varint of at most `u32::MAX`.
    BadVersion,
}

impl TypedDecodeError {
    /// Byte position (in the body or payload) of the field found wrong.
    pub fn position(&self) -> u64 {
        match self {
            TypedDecodeError::EnvelopeVersion(_) => 0,
            TypedDecodeError::BadVersion => 1,
            TypedDecodeError::BadLength | TypedDecodeError::BadName => 0,
        }
    }
}

impl std::fmt::Display for TypedDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypedDecodeError::BadLength => write!(f, "length does not match its fields"),
            TypedDecodeError::BadName => {
                write!(f, "a name is empty, too long or not UTF-8")
            }
            TypedDecodeError::EnvelopeVersion(v) => write!(
                f,
                "envelope version {v} is unknown to this build (not a typed message?)"
            ),
            TypedDecodeError::BadVersion => write!(f, "schema version is malformed"),
        }
    }
}

/// Whether `name` may be a type name (`max` = [`TYPE_NAME_BYTES_MAX`]) or a
/// codec name ([`CODEC_NAME_BYTES_MAX`]): 1..=max bytes.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty() && name.len() <= max
}

/// Encodes the body of `message_type.meta`; `None` if a name is empty or
/// too long.
pub fn encode_identity(id: &TypeIdentity) -> Option<Vec<u8>> {
    if !valid_name(&id.name, TYPE_NAME_BYTES_MAX) || !valid_name(&id.codec, CODEC_NAME_BYTES_MAX) {
        return None;
    }
    let mut out = Vec::with_capacity(7 + id.name.len() + id.codec.len());
    out.extend_from_slice(&id.version.to_le_bytes());
    out.extend_from_slice(&(id.name.len() as u16).to_le_bytes());
    out.extend_from_slice(id.name.as_bytes());
    out.push(id.codec.len() as u8);
    out.extend_from_slice(id.codec.as_bytes());
    Some(out)
}

/// Decodes the body of `message_type.meta`.
pub fn decode_identity(b: &[u8]) -> Result<TypeIdentity, TypedDecodeError> {
    if b.len() < 6 {
        return Err(TypedDecodeError::BadLength);
    }
    let version = get_u32(b, 0);
    let n = get_u16(b, 4) as usize;
    let name_end = 6 + n;
    if b.len() < name_end + 1 {
        return Err(TypedDecodeError::BadLength);
    }
    let m = b[name_end] as usize;
    if b.len() != name_end + 1 + m {
        return Err(TypedDecodeError::BadLength);
    }
    let name = std::str::from_utf8(&b[6..name_end]).map_err(|_| TypedDecodeError::BadName)?;
    let codec = std::str::from_utf8(&b[name_end + 1..]).map_err(|_| TypedDecodeError::BadName)?;
    if !valid_name(name, TYPE_NAME_BYTES_MAX) || !valid_name(codec, CODEC_NAME_BYTES_MAX) {
        return Err(TypedDecodeError::BadName);
    }
    Ok(TypeIdentity {
        name: name.to_string(),
        version,
        codec: codec.to_string(),
    })
}

/// Appends the envelope header of a body of schema `version` to `out`.
#[inline]
pub fn put_envelope(out: &mut Vec<u8>, version: u32) {
    out.push(ENVELOPE_VERSION);
    let mut v = version;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Splits a typed payload into its schema version and the codec's bytes.
#[inline]
pub fn decode_envelope(b: &[u8]) -> Result<(u32, &[u8]), TypedDecodeError> {
    let (&first, rest) = b.split_first().ok_or(TypedDecodeError::BadLength)?;
    if first != ENVELOPE_VERSION {
        return Err(TypedDecodeError::EnvelopeVersion(first));
    }
    let mut v: u64 = 0;
    for i in 0..5 {
        let byte = *rest.get(i).ok_or(TypedDecodeError::BadVersion)?;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if (i > 0 && byte == 0) || v > u64::from(u32::MAX) {
                return Err(TypedDecodeError::BadVersion);
            }
            return Ok((v as u32, &rest[i + 1..]));
        }
    }
    Err(TypedDecodeError::BadVersion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trip_and_damage() {
        let id = TypeIdentity {
            name: "shop.Order".into(),
            version: 7,
            codec: "postcard".into(),
        };
        let b = encode_identity(&id).unwrap();
        assert_eq!(decode_identity(&b), Ok(id.clone()));
        for cut in 0..b.len() {
            assert!(decode_identity(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode_identity(&long), Err(TypedDecodeError::BadLength));
        let mut bad = b.clone();
        bad[6] = 0xff;
        assert_eq!(decode_identity(&bad), Err(TypedDecodeError::BadName));
        let empty = TypeIdentity {
            name: String::new(),
            ..id.clone()
        };
        assert_eq!(encode_identity(&empty), None);
        let mut no_codec = encode_identity(&id).unwrap();
        no_codec.truncate(6 + id.name.len());
        no_codec.push(0);
        assert_eq!(decode_identity(&no_codec), Err(TypedDecodeError::BadName));
    }

    #[test]
    fn envelope_round_trip() {
        for v in [0, 1, 127, 128, 300, 1 << 21, u32::MAX] {
            let mut out = Vec::new();
            put_envelope(&mut out, v);
            out.extend_from_slice(b"body");
            assert!(
                out.len() <= 6 + 4,
                "a version byte and at most five varint bytes"
            );
            assert_eq!(decode_envelope(&out), Ok((v, &b"body"[..])), "{v}");
        }
        assert_eq!(decode_envelope(&[]), Err(TypedDecodeError::BadLength));
        assert_eq!(
            decode_envelope(&[2, 1]),
            Err(TypedDecodeError::EnvelopeVersion(2))
        );
        assert_eq!(decode_envelope(&[1]), Err(TypedDecodeError::BadVersion));
        // Overlong (0x80 0x00 is 0 in two bytes), past u32::MAX, too long.
        assert_eq!(
            decode_envelope(&[1, 0x80, 0]),
            Err(TypedDecodeError::BadVersion)
        );
        assert_eq!(
            decode_envelope(&[1, 0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(TypedDecodeError::BadVersion)
        );
        assert_eq!(
            decode_envelope(&[1, 0x80, 0x80, 0x80, 0x80, 0x80, 1]),
            Err(TypedDecodeError::BadVersion)
        );
    }
}
