//! A synchronous facade over [`Store`] for the CLI and sessions.

use std::path::Path;

use crate::{NodeTiming, RunFilter, RunRecord, SessionRecord, Store, StoreError};

/// [`Store`] with blocking methods, for the CLI and sessions. Owns a small
/// tokio runtime (one worker thread, so connections keep being served
/// while callers block); safe to share between threads (`Arc`). Do not
/// call it from inside an async runtime: use [`Store`] there. Writes go
/// through the store's writer thread (see the crate docs); the deferred
/// ones ([`BlockingStore::update_run_deferred`],
/// [`BlockingStore::update_progress`]) never block. Dropping it commits
/// what is queued.
pub struct BlockingStore {
    runtime: tokio::runtime::Runtime,
    store: Store,
}

fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weft-store")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Open {
            target: "runtime".into(),
            message: e.to_string(),
        })
}

impl BlockingStore {
    /// See [`Store::open`].
    pub fn open(url_or_path: &str) -> Result<Self, StoreError> {
        let runtime = runtime()?;
        let store = runtime.block_on(Store::open(url_or_path))?;
        Ok(BlockingStore { runtime, store })
    }

    /// See [`Store::open_project_default`].
    pub fn open_project_default(project_dir: &Path) -> Result<Self, StoreError> {
        let runtime = runtime()?;
        let store = runtime.block_on(Store::open_project_default(project_dir))?;
        Ok(BlockingStore { runtime, store })
    }

    /// The async store.
    pub fn inner(&self) -> &Store {
        &self.store
    }

    /// See [`Store::backend_name`].
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// See [`Store::target`].
    pub fn target(&self) -> &str {
        self.store.target()
    }

    /// See [`Store::close`].
    pub fn close(&self) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.close())
    }

    /// See [`Store::flush`].
    pub fn flush(&self) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.flush())
    }

    /// See [`Store::create_session`].
    pub fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.create_session(s))
    }

    /// See [`Store::close_session`].
    pub fn close_session(&self, id: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.close_session(id, at))
    }

    /// See [`Store::get_session`].
    pub fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.runtime.block_on(self.store.get_session(id))
    }

    /// See [`Store::list_sessions`].
    pub fn list_sessions(&self, limit: Option<u32>) -> Result<Vec<SessionRecord>, StoreError> {
        self.runtime.block_on(self.store.list_sessions(limit))
    }

    /// See [`Store::insert_run`].
    pub fn insert_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.insert_run(r))
    }

    /// See [`Store::insert_runs`].
    pub fn insert_runs(&self, rs: &[RunRecord]) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.insert_runs(rs))
    }

    /// See [`Store::update_run`].
    pub fn update_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.runtime.block_on(self.store.update_run(r))
    }

    /// See [`Store::update_run_deferred`] (does not block).
    pub fn update_run_deferred(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.store.update_run_deferred(r)
    }

    /// See [`Store::update_progress`] (does not block).
    pub fn update_progress(&self, run_id: &str, timing: NodeTiming) -> Result<(), StoreError> {
        self.store.update_progress(run_id, timing)
    }

    /// See [`Store::get_run`].
    pub fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.runtime.block_on(self.store.get_run(run_id))
    }

    /// See [`Store::list_runs`].
    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.runtime.block_on(self.store.list_runs(f))
    }

    /// See [`Store::mark_orphans_interrupted`].
    pub fn mark_orphans_interrupted(&self) -> Result<Vec<String>, StoreError> {
        self.runtime.block_on(self.store.mark_orphans_interrupted())
    }
}
