//! The durable record of weft sessions and runs.
//!
//! Embedded SQLite (`<project>/.weft/weft.db`, WAL) by default, PostgreSQL
//! when several processes or machines share one registry. One API
//! ([`Store`], async; [`BlockingStore`] for synchronous callers) and one
//! portable, versioned schema for both.
//!
//! * Every run is one row, written when it starts and updated as it
//!   finishes; status changes are validated in one place
//!   ([`RunStatus::can_transition`]) and atomically against the stored row.
//! * A database with a newer schema, or a file that is not a database, is
//!   refused and left untouched.
//! * Runs left `running` by a process that died become `interrupted` on the
//!   next open.

mod blocking;
mod error;
mod model;
pub mod report;
mod store;
mod writer;

pub use blocking::BlockingStore;
pub use error::{Fault, StoreError};
pub use model::{
    NodeTiming, RunErrorRecord, RunFilter, RunRecord, RunStatus, SessionRecord, metrics_from_json,
};
pub use store::{SCHEMA_VERSION, Store, current_owner};
