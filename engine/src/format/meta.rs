//! Small configuration files (`stream.meta`): a framed, checksummed postcard body.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic (`SPOOLMTA` for stream config) |
//! | 8 | 4 | format version |
//! | 12 | 4 | body length `n` (at most [`META_BODY_BYTES_MAX`]) |
//! | 16 | 4 | CRC-32 of bytes 0..16 and 20..24+n |
//! | 20 | 4 | reserved, zero |
//! | 24 | n | body: postcard encoding of the versioned struct |

use super::{get_u32, put_u32};

/// Magic of a stream's `stream.meta`.
pub const STREAM_META_MAGIC: [u8; 8] = *b"SPOOLMTA";
/// Largest body accepted; anything longer is corruption.
pub const META_BODY_BYTES_MAX: usize = 64 * 1024;
const FRAME_BYTES: usize = 24;

/// Why a framed file is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDecodeError {
    /// Too short or longer than its length says.
    BadLength,
    /// Wrong magic.
    BadMagic,
    /// CRC mismatch.
    BadCrc,
}

/// Frames `body` with `magic` and `version`.
pub fn encode(magic: [u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= u32::MAX as usize, "meta body too large");
    let mut out = vec![0u8; FRAME_BYTES + body.len()];
    out[..8].copy_from_slice(&magic);
    put_u32(&mut out, 8, version);
    put_u32(&mut out, 12, body.len() as u32);
    out[FRAME_BYTES..].copy_from_slice(body);
    let crc = frame_crc(&out);
    put_u32(&mut out, 16, crc);
    out
}

/// Checks the frame and returns `(version, body)`.
pub fn decode(magic: [u8; 8], b: &[u8]) -> Result<(u32, &[u8]), MetaDecodeError> {
    decode_limited(magic, b, META_BODY_BYTES_MAX)
}

/// Like [`decode`], for bodies of up to `body_max` bytes (consumer
/// checkpoints, which grow with the number of unacknowledged messages).
pub fn decode_limited(
    magic: [u8; 8],
    b: &[u8],
    body_max: usize,
) -> Result<(u32, &[u8]), MetaDecodeError> {
    if b.len() < FRAME_BYTES {
        return Err(MetaDecodeError::BadLength);
    }
    if b[..8] != magic {
        return Err(MetaDecodeError::BadMagic);
    }
    let n = get_u32(b, 12) as usize;
    if n > body_max || FRAME_BYTES + n != b.len() {
        return Err(MetaDecodeError::BadLength);
    }
    if frame_crc(b) != get_u32(b, 16) {
        return Err(MetaDecodeError::BadCrc);
    }
    Ok((get_u32(b, 8), &b[FRAME_BYTES..]))
}

fn frame_crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..16]);
    h.update(&b[20..]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let b = encode(STREAM_META_MAGIC, 1, b"body");
        assert_eq!(decode(STREAM_META_MAGIC, &b), Ok((1, &b"body"[..])));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 4;
            assert!(decode(STREAM_META_MAGIC, &bad).is_err(), "byte {i}");
        }
        assert!(decode(STREAM_META_MAGIC, &b[..b.len() - 1]).is_err());
    }
}
