//! The durable record of weft sessions and runs.
//!
//! Embedded SQLite (`<project>/.weft/weft.db`, WAL) by default, PostgreSQL
//! when several processes or machines share one registry. One API
//! ([`Store`], async; [`BlockingStore`] for synchronous callers) and one
//! portable, versioned schema for both. [`Store::open`] takes a SQLite
//! file path, `sqlite://PATH`, `sqlite:PATH`, `postgres://...` or
//! `postgresql://...`; any other scheme (`mysql://`, `foo:bar`) is
//! [`StoreError::UnsupportedUrl`], which lists these forms.
//!
//! * Every run is one row, written when it is planned or starts and
//!   updated as it progresses; status changes are validated in one place
//!   ([`RunStatus::can_transition`]) and atomically against the stored row.
//!   A run id recorded already is [`StoreError::DuplicateRun`] and the
//!   stored row is left untouched.
//! * A database with a newer schema, or a file that is not a database, is
//!   refused and left untouched.
//! * Runs left `queued` or `running` by a local process that died become
//!   `interrupted` on the next open, with the time of their last recorded
//!   progress ([`RunRecord::updated_at`]) as their end time and the node
//!   timings recorded so far.
//!
//! # Writes: one writer, group commits
//!
//! Recording a run used to cost about 700 µs (an insert and two updates,
//! each its own transaction through a pooled connection). Now every write
//! of a [`Store`] handle (and its clones) goes to one **writer thread**
//! that owns one connection and commits whatever is queued in one
//! transaction (a *group*); reads use a separate pool. On SQLite the
//! writer calls SQLite itself on its thread (rusqlite), so a statement
//! costs no hop to sqlx's worker thread and back. Two kinds of write:
//!
//! * **Waited** ([`Store::insert_run`], [`Store::insert_runs`],
//!   [`Store::update_run`], [`Store::create_session`],
//!   [`Store::close_session`]): the call returns once its group is
//!   committed, with its own result (duplicate, forbidden transition,
//!   unknown id). Concurrent callers share a commit.
//! * **Deferred** ([`Store::update_run_deferred`],
//!   [`Store::update_progress`]): queued in about a microsecond. The writer
//!   waits up to 5 ms for more before committing a group nobody waits for,
//!   coalesces the writes of one run (a chain of status changes is checked
//!   in memory, the stored row must allow its first) and writes many runs
//!   per statement. A refused deferred write is reported by the next
//!   [`Store::flush`] or [`Store::close`] ([`StoreError::Deferred`]).
//!
//! The `weft multirun` pattern is: [`Store::insert_runs`] for the planned
//! batch (all `queued`, one transaction), then per run a deferred
//! `running` update, [`Store::update_progress`] after each node, and a
//! deferred terminal update; [`Store::flush`] / [`Store::close`] at the
//! end. `cargo bench -p weft-store --bench record_runs` measures it: about
//! 55 µs per run end to end with ten nodes (55–75 µs of CPU, all threads),
//! against 500–700 µs (450–550 µs of CPU) with one transaction per write
//! before; wall times depend on the machine's load.
//!
//! Durability: reads through a handle see its queued writes (they wait for
//! them). Everything acknowledged is committed by [`Store::flush`],
//! [`Store::close`], or dropping the last clone of the handle (which waits
//! for the writer), so a clean exit loses nothing; a process that ends
//! with `std::process::exit` skips destructors and must flush first. A
//! crash (`kill -9`, power loss) loses at most the deferred writes of the
//! last few milliseconds, never a waited one, and only updates of rows
//! that already exist: such runs are found `queued` or `running` by the
//! orphan sweep and marked `interrupted` with the end time of their last
//! committed progress.
//!
//! # The run queue of `weft serve`
//!
//! Schema version 2 adds the durable run queue and the server's sessions
//! (see [`Store::enqueue`], [`Store::claim`], [`Store::complete`],
//! [`Store::expire_leases`], [`Store::create_or_reuse_server_session`]).
//! A dispatch is committed before `enqueue` returns; a claimed run is
//! leased to an owner until a time, FIFO within a session and bounded by
//! the session's concurrency limit across every process; a run completes
//! only while its owner holds the lease, so no run finishes twice. Runs in
//! the queue are not orphans: [`Store::open`] leaves queued ones for the
//! next server and leased ones for [`Store::expire_leases`]. On SQLite the
//! queue operations go through the writer like every write (the
//! concurrent enqueues of one group are decided one by one, then looked up
//! and written in two calls: `cargo bench -p weft-store --bench queue`
//! measures 7,000–8,500 single-run enqueues per second from 64 tasks, p50
//! 3–7 ms, about 55 µs of CPU each, on a 2-core machine at load average
//! 7–9, where the p99 (30–40 ms) is mostly waiting for a CPU); on
//! PostgreSQL each is its own transaction on the read pool, with `FOR
//! UPDATE SKIP LOCKED`, advisory locks and a sequence for FIFO order.

mod blocking;
mod error;
mod lite;
mod model;
mod queue;
pub mod report;
mod store;
mod writer;

pub use blocking::BlockingStore;
pub use error::{Fault, StoreError};
pub use model::{
    NodeTiming, RunErrorRecord, RunFilter, RunRecord, RunStatus, SessionRecord, metrics_from_json,
};
pub use queue::{
    Claimed, Enqueued, ExpiredLease, NOT_LIVE_STATES, QueueCounts, QueueItem, ServerSessionRecord,
};
pub use store::{SCHEMA_VERSION, Store, current_owner};
