//! What recovery found and did when the store was opened.

use std::path::PathBuf;

/// A torn tail cut from the end of a bucket's log at open: bytes after the
/// last valid record that were not known durable (an unfinished write at the
/// moment of a crash). They were copied to `quarantine`, then zeroed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Stream name.
    pub stream: String,
    /// Priority level (bucket).
    pub priority: u8,
    /// The segment file.
    pub segment: PathBuf,
    /// Byte position of the cut within the segment.
    pub position: u64,
    /// Number of bytes cut (and quarantined): the run of non-zero bytes
    /// starting at `position`.
    pub bytes: u64,
    /// Further non-zero bytes found later in the segment (pages written back
    /// out of order before the crash), zeroed but not quarantined.
    pub scattered_bytes: u64,
    /// The offset the next message in this bucket gets; a message the
    /// torn bytes may have held would have had this offset.
    pub first_lost_offset: u64,
    /// Where the cut bytes were copied.
    pub quarantine: PathBuf,
}

/// Everything recovery did while opening a store. Empty after a clean close.
/// [`Store::recovery_report`](crate::Store::recovery_report) returns it; its
/// `Display` gives one line per finding.
///
/// ```
/// use spool::{Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     store.stream("orders")?.send(b"order #1")?;
///     store.close()?;
///
///     let store = Store::open(dir.path(), Options::default())?;
///     let report = store.recovery_report();
///     for tail in &report.torn_tails {
///         // After a crash: an unfinished write cut from the end of a log.
///         let kept = tail.quarantine.display();
///         eprintln!("{}: {} bytes cut, kept in {kept}", tail.stream, tail.bytes);
///     }
///     assert!(report.is_clean()); // closed cleanly: nothing to recover
///     assert_eq!(report.removed_orphan_blobs, 0);
///     print!("{report}"); // "clean: nothing to recover"
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Torn tails cut from active segments.
    pub torn_tails: Vec<TornTail>,
    /// Indexes of sealed segments that were missing and were rebuilt.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Temporary files left by an interrupted write, removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Streams whose creation was interrupted, removed.
    pub removed_incomplete_streams: Vec<PathBuf>,
    /// Claim-check blobs no message referred to (a crash came between
    /// storing a blob and appending its message), removed.
    pub removed_orphan_blobs: usize,
}

impl RecoveryReport {
    /// True when recovery found nothing to do.
    pub fn is_clean(&self) -> bool {
        self.torn_tails.is_empty()
            && self.rebuilt_indexes.is_empty()
            && self.removed_temp_files.is_empty()
            && self.removed_incomplete_streams.is_empty()
            && self.removed_orphan_blobs == 0
    }

    /// Appends what `other` found (the findings of one stream's open).
    pub(crate) fn merge(&mut self, other: RecoveryReport) {
        self.torn_tails.extend(other.torn_tails);
        self.rebuilt_indexes.extend(other.rebuilt_indexes);
        self.removed_temp_files.extend(other.removed_temp_files);
        self.removed_incomplete_streams
            .extend(other.removed_incomplete_streams);
        self.removed_orphan_blobs += other.removed_orphan_blobs;
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_clean() {
            return writeln!(f, "clean: nothing to recover");
        }
        for t in &self.torn_tails {
            writeln!(
                f,
                "torn tail: stream {} priority {}: {} bytes cut at byte {} of {} (next offset {}; {} scattered bytes zeroed), copied to {}",
                t.stream,
                t.priority,
                t.bytes,
                t.position,
                t.segment.display(),
                t.first_lost_offset,
                t.scattered_bytes,
                t.quarantine.display()
            )?;
        }
        for p in &self.rebuilt_indexes {
            writeln!(f, "rebuilt index {}", p.display())?;
        }
        for p in &self.removed_temp_files {
            writeln!(f, "removed temporary file {}", p.display())?;
        }
        for p in &self.removed_incomplete_streams {
            writeln!(f, "removed incomplete stream {}", p.display())?;
        }
        if self.removed_orphan_blobs > 0 {
            writeln!(
                f,
                "removed {} orphan claim-check blob(s)",
                self.removed_orphan_blobs
            )?;
        }
        Ok(())
    }
}
