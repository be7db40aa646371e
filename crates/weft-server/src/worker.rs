//! Where runs execute. A session master talks to its workers through this
//! narrow interface (start, health, dispatch one run spec with its cancel
//! token, stop), so workers in other processes or on a cluster plug in
//! behind it: cancelling the token is the cancel call (a remote worker's
//! dispatcher forwards it). Here:
//! [`InProcessWorker`], the session's own [`ServiceSession`] on blocking
//! threads.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use weft_pipeline::CancelToken;
use weft_session::{
    CloseMode, RunSpec, ServiceOptions, ServiceSession, SessionError, SessionOptions, StoreChoice,
    finished_record,
};
use weft_store::RunRecord;

/// Opens `project` for one served session, the way the server and `weft
/// worker` both need it: the session's id is the served session's, nothing
/// is recorded by the session itself (the server records runs through its
/// queue), finished runs are not kept in memory, and at most `max_workers`
/// runs execute at once.
pub fn open_served_session(
    project: &Path,
    mut options: SessionOptions,
    session_id: &str,
    max_workers: usize,
) -> Result<ServiceSession, SessionError> {
    options.store = StoreChoice::Disabled;
    options.session_id = Some(session_id.to_string());
    ServiceSession::create(
        project,
        ServiceOptions {
            session: options,
            max_workers: Some(max_workers.max(1)),
            history_limit: Some(0),
        },
    )
}

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a dispatch did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The spec was refused when prepared on the worker (the project
    /// changed since the run was accepted, an input disappeared...).
    #[error(transparent)]
    Invalid(#[from] SessionError),
    /// The worker is gone (crashed, stopped, unreachable).
    #[error("worker unavailable: {0}")]
    Unavailable(String),
    /// The worker already runs as many specs as it can.
    #[error("worker busy")]
    Busy,
    /// A worker did not answer a ready `/healthz` in time.
    #[error("worker {worker} was not ready after {waited_ms} ms")]
    NotReady {
        /// Which worker (`pid 1234`).
        worker: String,
        /// How long it was given, in milliseconds.
        waited_ms: u64,
    },
    /// A launcher could not start a worker.
    #[error(transparent)]
    Launch(#[from] crate::process::LaunchError),
    /// A worker's memory or CPU-time limit ended the run (the worker
    /// died of it); the run fails, since a rerun would meet it again.
    #[error("{0}")]
    LimitExceeded(String),
    /// The worker refused the dispatch: its HTTP status and error.
    #[error("the worker answered {status}: {message}")]
    Refused {
        /// The worker's HTTP status.
        status: u16,
        /// Its error message (with its problems).
        message: String,
    },
}

impl WorkerError {
    /// The machine-readable code (a failed session's `termination_reason.code`).
    pub fn code(&self) -> &'static str {
        match self {
            WorkerError::Invalid(_) => "invalid",
            WorkerError::Unavailable(_) => "worker_unavailable",
            WorkerError::Busy => "worker_busy",
            WorkerError::NotReady { .. } => "worker_healthz_timeout",
            WorkerError::Launch(_) => "worker_launch_failed",
            WorkerError::Refused { .. } => "worker_refused",
            WorkerError::LimitExceeded(_) => "limit_exceeded",
        }
    }
}

/// Where runs that execute in another process report their progress to
/// their session's master (in-process runs report it through hooks).
pub trait RunProgress: Send + Sync {
    /// Run `run_id` started its pipeline of `total_nodes` nodes.
    fn pipeline_started(&self, run_id: &str, total_nodes: usize);
    /// A node of run `run_id` finished.
    fn node_finished(&self, run_id: &str, node: &str, start: jiff::Timestamp, duration: std::time::Duration);
}

/// A worker's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Ready for dispatches.
    Ready,
    /// Starting.
    Starting,
    /// Stopped or dead.
    Down,
}

/// One session's workers, seen from its master.
pub trait Worker: Send + Sync {
    /// Starts the worker(s); an error fails the session with its message.
    fn start(&self) -> BoxFuture<'_, Result<(), WorkerError>>;
    /// Current health.
    fn health(&self) -> BoxFuture<'_, Health>;
    /// Runs one spec to completion and returns its finished record (a
    /// failed run is a record with status `failed`, not an error; a record
    /// is what crosses a process boundary). Cancelling `cancel` stops the
    /// run between nodes (or before it starts); it then ends `cancelled`.
    fn dispatch(&self, spec: RunSpec, cancel: CancelToken) -> BoxFuture<'_, Result<RunRecord, WorkerError>>;
    /// Stops the worker: lets running runs finish (`Wait`) or cancels them.
    fn stop(&self, mode: CloseMode) -> BoxFuture<'_, ()>;
}

/// Runs specs in this process, on the session's [`ServiceSession`] (whose
/// worker slots equal the session's `max_concurrency`).
pub struct InProcessWorker {
    session: Arc<ServiceSession>,
}

impl InProcessWorker {
    /// A worker over an opened service session.
    pub fn new(session: Arc<ServiceSession>) -> Self {
        InProcessWorker { session }
    }
}

impl Worker for InProcessWorker {
    fn start(&self) -> BoxFuture<'_, Result<(), WorkerError>> {
        // The project was opened (and validated) when the session was created.
        Box::pin(async { Ok(()) })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async { Health::Ready })
    }

    fn dispatch(&self, spec: RunSpec, cancel: CancelToken) -> BoxFuture<'_, Result<RunRecord, WorkerError>> {
        let session = Arc::clone(&self.session);
        Box::pin(async move {
            let run = tokio::task::spawn_blocking(move || {
                let prepared = session.prepare_spec(&spec)?;
                let result = session.run_prepared_with(prepared, &cancel)?;
                Ok::<_, SessionError>(finished_record(&spec, &result, &weft_store::current_owner()))
            });
            match run.await {
                Ok(record) => record.map_err(WorkerError::from),
                // run_prepared catches node panics; this is a panic outside
                // any run (a bug), reported as the worker dying.
                Err(join) => Err(WorkerError::Unavailable(format!("the run's thread died: {join}"))),
            }
        })
    }

    fn stop(&self, mode: CloseMode) -> BoxFuture<'_, ()> {
        let session = Arc::clone(&self.session);
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || session.close(mode)).await;
        })
    }
}
