//! The engines: Spool and its embedded peers, one module each.

mod fjall;
mod queue_file;
mod redb;
mod spool;
mod sqlite;
mod yaque;

use crate::engine::Engine;

pub use self::fjall::Fjall;
pub use self::queue_file::QueueFile;
pub use self::redb::Redb;
pub use self::spool::{options as spool_options, Spool};
pub use self::sqlite::Sqlite;
pub use self::yaque::Yaque;

/// Every engine, in table column order (Spool first).
pub fn all() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(Spool),
        Box::new(Sqlite),
        Box::new(Redb),
        Box::new(Fjall),
        Box::new(QueueFile),
        Box::new(Yaque),
    ]
}
