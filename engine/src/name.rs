//! Validation of stream and consumer names.
//!
//! A name is `[A-Za-z0-9_.-]{1,128}` and does not start with `.`; names are
//! used as file names, so this is what keeps `..`, `/` and NUL out of paths.

use crate::{Error, Result};

/// Longest name.
pub const NAME_BYTES_MAX: usize = 128;

/// Checks a stream or consumer name.
pub fn validate(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > NAME_BYTES_MAX {
        Some("longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        Some("only A-Z a-z 0-9 _ . - are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.chars().take(NAME_BYTES_MAX + 8).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in ["orders", "a", "A-b_c.9", &"x".repeat(128)] {
            validate(n).unwrap();
        }
    }

    #[test]
    fn rejects_hostile_names() {
        for n in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a\0b",
            "é",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(validate(n), Err(Error::InvalidName { .. })),
                "{n:?}"
            );
        }
    }
}
