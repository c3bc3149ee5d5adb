//! One consumer journal file, record by record, as the engine replays it
//! (`format::journal::decode_all`, the decoder of the open and of the
//! consumer fold): for `segment-tool dump --journal`.

use super::read::{read_bounded, too_large, Bounded};
use super::{Inspector, JournalInfo, JournalRecordInfo, Problem};
use crate::consumer::journal::JOURNAL_BYTES_LIMIT;
use crate::format::journal::{self, JournalHeader, Record, JOURNAL_RECORD_BYTES};
use crate::{Error, Result};
use std::path::Path;

/// Bytes `r` takes in its journal.
fn record_bytes(r: &Record) -> u64 {
    match r {
        Record::Entry(_) => JOURNAL_RECORD_BYTES as u64,
        Record::AckSet(s) => journal::ack_set_record_bytes(s) as u64,
    }
}

impl Inspector<'_> {
    /// Reads the consumer journal at `path`, as `read_journal_file` says.
    pub fn read_journal_file(&self, path: &Path) -> Result<JournalInfo> {
        let bytes = match read_bounded(self.vfs, path, JOURNAL_BYTES_LIMIT) {
            Ok(Bounded::Bytes(b)) => b,
            Ok(Bounded::Missing) => {
                return Err(Error::io("read", path, std::io::ErrorKind::NotFound.into()))
            }
            Ok(Bounded::TooLarge(len)) => {
                let p = too_large(path, len, JOURNAL_BYTES_LIMIT);
                return Err(Error::corrupt(path, 0, p.reason));
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let mut info = JournalInfo {
            path: path.to_path_buf(),
            file_bytes: bytes.len() as u64,
            header: None,
            records: Vec::new(),
            end: 0,
            stopped_at: None,
            problems: Vec::new(),
        };
        let Some((header, records)) = journal::decode_all(&bytes) else {
            info.problems.push(Problem::at(
                path,
                0,
                "not a consumer journal header of format version 1 or 2 (the engine replays \
                 nothing of such a file: a journal never synced holds nothing)",
            ));
            return Ok(info);
        };
        let header: JournalHeader = header;
        info.header = Some(header);
        info.end = journal::JOURNAL_HEADER_BYTES as u64;
        for (position, record) in records {
            let bytes = record_bytes(&record);
            info.end = position + bytes;
            info.records.push(JournalRecordInfo {
                position,
                bytes,
                record,
            });
        }
        let end = info.end as usize;
        let next = &bytes[end.min(bytes.len())..(end + JOURNAL_RECORD_BYTES).min(bytes.len())];
        if next.iter().any(|&b| b != 0) {
            info.stopped_at = Some(info.end);
        }
        Ok(info)
    }
}
