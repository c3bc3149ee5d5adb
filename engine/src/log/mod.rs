//! The log: segments of one priority bucket, appends, syncs, reads and recovery.
//!
//! `scan` and `index_file` are pure verdicts over bytes, shared with the
//! inspector and repair; `recovery` applies them at open.

pub(crate) mod append_index;
pub(crate) mod bucket;
pub(crate) mod index_file;
pub(crate) mod record;
pub(crate) mod recovery;
pub(crate) mod scan;
pub(crate) mod segment;

pub(crate) use bucket::Bucket;
pub use record::Record;
