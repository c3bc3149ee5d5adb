//! Read-only inspection of a store with plain reads (no maps, no lock), for
//! `segment-tool`. Works on a live store: a tail being written is tolerated.
