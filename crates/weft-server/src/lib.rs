//! `weft serve`: sessions as a service.
//!
//! Roles, as in DESIGN's service section, inside one process:
//! - the **manager** ([`Server`]): the HTTP API ([`app`]), the store and the
//!   reconcile pass (lease renewal and expiry, idle expiry, adoption of
//!   sessions found in the store);
//! - one **session master** per live session: an async task that owns the
//!   session's queue (claims runs FIFO from the store, bounded by the
//!   session's `max_concurrency` and the server's `max_workers`, round-robin
//!   across sessions through one fair semaphore), its idle timer and its
//!   shutdown;
//! - **workers** behind the narrow [`Worker`] interface (start, health,
//!   dispatch one run spec, cancel, stop): [`InProcessWorker`] (threads of
//!   this process) or [`ProcessWorker`] (`weft worker` processes started
//!   by a [`Launcher`]: local children, Ray jobs ([`RayLauncher`]) or
//!   Slurm batch jobs ([`SlurmLauncher`]),
//!   served by [`worker_app`]).
//!
//! A dispatch is written to the store before it is acknowledged; a claimed
//! run holds a lease that its server renews, and only the holder of the
//! lease may record the run's end, so no run finishes twice.

mod api;
pub mod clock;
mod datasets;
mod error;
pub mod events;
pub mod limits;
mod metrics;
mod openapi;
pub mod process;
pub mod ray;
pub mod resources;
mod server;
pub mod slurm;
pub mod slurm_rest;
pub mod states;
pub mod tls;
pub mod web;
mod worker;
pub mod worker_app;

use std::future::Future;
use std::sync::Arc;

pub use api::{app, run_view};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ServerError, problems_of};
pub use limits::{LimitError, WorkerLimits, format_size, parse_size};
pub use metrics::Metrics;
pub use openapi::document as openapi_document;
pub use process::{
    ExternalLauncher, LaunchError, Launcher, LauncherConfig, LocalProcessLauncher, ProcessOptions,
    ProcessWorker, WorkerHandle, WorkerProcess, WorkerRequest,
};
pub use ray::{RayError, RayLauncher, RayOptions};
pub use resources::{ResourceProblem, ResourcesRequest, SessionResources};
pub use server::{CreateSession, LiveSession, Server, ServerConfig, session_view};
pub use slurm::{SlurmCommands, SlurmLauncher, SlurmOptions, SlurmRest};
pub use states::{IllegalTransition, SessionEvent, SessionState, transition};
pub use worker::{BoxFuture, Health, InProcessWorker, RunProgress, Worker, WorkerError, open_served_session};
pub use worker_app::{NDJSON, WorkerState, serve_worker, worker_app};

/// The port `weft serve` listens on by default.
pub const DEFAULT_PORT: u16 = 7878;

/// Serves `server` on `listener` until `stop` resolves, then shuts down
/// gracefully (503 for new work, running runs finish within the grace
/// period, queued runs stay queued).
pub async fn serve<L>(
    server: Arc<Server>,
    listener: L,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    server.recover().await?;
    let reconcile = tokio::spawn(Arc::clone(&server).reconcile_loop());
    let router = app(Arc::clone(&server));
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let stopper = {
        let server = Arc::clone(&server);
        async move {
            stop.await;
            // Stop accepting work first; the HTTP side closes after the runs.
            server.shutdown().await;
            let _ = stopped_tx.send(());
        }
    };
    let http = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stopped_rx.await;
    });
    let (served, ()) = tokio::join!(http, stopper);
    let _ = reconcile.await;
    served.map_err(|source| ServerError::Io {
        context: "serving HTTP".into(),
        source,
    })
}
