//! The identity recorded with a typed stream (`message_type.meta`):
//! written the first time a typed handle opens the stream, checked at every
//! typed open, raised to a newer schema version (DESIGN.md, Typed
//! messages).

use crate::format::meta::{self, MESSAGE_TYPE_MAGIC, MESSAGE_TYPE_VERSION};
use crate::format::typed::{self, TypeIdentity, CODEC_NAME_BYTES_MAX, TYPE_NAME_BYTES_MAX};
use crate::io;
use crate::layout::MESSAGE_TYPE_FILE;
use crate::stream::Stream;
use crate::{Error, Result};

/// Checks `wanted` against the identity recorded with `stream`, recording
/// it if there is none and raising the recorded version if `wanted` is
/// newer. Serialized per stream, and never after the store is closed.
pub(super) fn check_or_record(stream: &Stream, wanted: &TypeIdentity) -> Result<()> {
    if !typed::valid_name(&wanted.name, TYPE_NAME_BYTES_MAX) {
        return Err(Error::InvalidArgument(format!(
            "the name of a message type must be 1 to {TYPE_NAME_BYTES_MAX} bytes, not {}",
            wanted.name.len()
        )));
    }
    if !typed::valid_name(&wanted.codec, CODEC_NAME_BYTES_MAX) {
        return Err(Error::InvalidArgument(format!(
            "the name of a codec must be 1 to {CODEC_NAME_BYTES_MAX} bytes, not {}",
            wanted.codec.len()
        )));
    }
    let name = stream.name().to_string();
    stream.inner().with_files(|ctx, dir| {
        let path = dir.join(MESSAGE_TYPE_FILE);
        let stored = read(&*ctx.vfs, &path)?;
        if let Some(stored) = &stored {
            if stored.name != wanted.name || stored.codec != wanted.codec {
                return Err(Error::TypeMismatch {
                    stream: name,
                    stored: stored.to_string(),
                    requested: wanted.to_string(),
                    newer: false,
                });
            }
            if stored.version > wanted.version {
                return Err(Error::TypeMismatch {
                    stream: name,
                    stored: stored.to_string(),
                    requested: wanted.to_string(),
                    newer: true,
                });
            }
            if stored.version == wanted.version {
                return Ok(());
            }
        }
        // None recorded, or an older version: (re)written in one durable
        // step. The directory is opened first (failing to open it changes
        // nothing); a failed directory sync poisons the store.
        let body = typed::encode_identity(wanted)
            .ok_or_else(|| Error::Internal("message type identity checked above".into()))?;
        let bytes = meta::encode(MESSAGE_TYPE_MAGIC, MESSAGE_TYPE_VERSION, &body);
        let d = ctx.open_dir(dir)?;
        let tmp = io::write_tmp_synced(&*ctx.vfs, dir, MESSAGE_TYPE_FILE, &bytes)?;
        ctx.vfs
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        d.sync()
    })
}

/// The identity recorded at `path`; `None` if there is none. Damage is
/// [`Error::Corrupt`], an unknown format version
/// [`Error::UnsupportedVersion`].
pub(crate) fn read(
    vfs: &dyn crate::io::Vfs,
    path: &std::path::Path,
) -> Result<Option<TypeIdentity>> {
    let Some(body) = io::read_framed(
        vfs,
        path,
        MESSAGE_TYPE_MAGIC,
        MESSAGE_TYPE_VERSION,
        meta::META_BODY_BYTES_MAX,
        "message type",
    )?
    else {
        return Ok(None);
    };
    typed::decode_identity(&body).map(Some).map_err(|e| {
        Error::corrupt(
            path,
            meta::BODY_OFFSET as u64 + e.position(),
            format!("message type: {e}"),
        )
    })
}
