//! The log: segments of one priority bucket, appends, syncs, reads and recovery.

pub(crate) mod append_index;
pub(crate) mod bucket;
pub(crate) mod segment;

pub(crate) use bucket::Bucket;
