//! The on-disk format: pure codecs, no I/O.
//!
//! Every file starts with an 8-byte magic and a `u32` format version; every
//! integer is little endian; nothing persists a `usize`. DESIGN.md has the byte
//! tables; the constants in the submodules mirror them.

pub mod attributes;
pub mod headers;
pub mod index;
pub mod journal;
pub mod meta;
pub mod record;
pub mod segment;
pub mod typed;

/// A new CRC-32 hasher. `crc32fast::Hasher::new` asks the CPU's feature
/// cache which implementation to use at every call (three lookups, not
/// inlined); a record's checksum is computed at every send and every read,
/// so the choice is made once and copied.
#[inline]
pub(crate) fn crc32() -> crc32fast::Hasher {
    static CHOSEN: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(crc32fast::Hasher::new).clone()
}

/// The CRC-32 of `bytes` (`crc32fast::hash`, through [`crc32`]).
#[inline]
pub(crate) fn crc32_of(bytes: &[u8]) -> u32 {
    let mut h = crc32();
    h.update(bytes);
    h.finalize()
}

/// Reads a little-endian `u16` at `pos`. The caller has checked the bounds.
#[inline]
pub(crate) fn get_u16(bytes: &[u8], pos: usize) -> u16 {
    u16::from_le_bytes([bytes[pos], bytes[pos + 1]])
}

/// Reads a little-endian `u32` at `pos`. The caller has checked the bounds.
#[inline]
pub(crate) fn get_u32(bytes: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian `u64` at `pos`. The caller has checked the bounds.
#[inline]
pub(crate) fn get_u64(bytes: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[pos..pos + 8]);
    u64::from_le_bytes(b)
}

#[inline]
pub(crate) fn put_u16(bytes: &mut [u8], pos: usize, v: u16) {
    bytes[pos..pos + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u32(bytes: &mut [u8], pos: usize, v: u32) {
    bytes[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u64(bytes: &mut [u8], pos: usize, v: u64) {
    bytes[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
}

/// Rounds `n` up to a multiple of 8 (record alignment).
#[inline]
pub const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}
