//! Runners and hooks: executing a [`Pipeline`](weft_pipeline::Pipeline)
//! against a [`Catalog`](weft_catalog::Catalog) for one run.
//!
//! Everything a run mutates (remaining consumers per dataset, outputs,
//! timings) lives in a per-run execution value; runners themselves are
//! stateless and can run any number of pipelines at once.
//!
//! A node that panics is a failed node: the panic is caught at the node
//! boundary and becomes a [`RunError::Node`] whose source is a
//! [`NodePanic`] (node, run id, message). A failed run returns a
//! [`RunFailed`] that keeps the timings of the nodes that finished.

mod async_runner;
mod context;
mod error;
mod execution;
mod hooks;
mod panic;
pub mod process_runner;
mod registry;
mod result;
mod resume;
mod sequential;
mod thread;
mod validate;

pub use async_runner::AsyncRunner;
pub use context::RunContext;
pub use error::{RunError, RunFailed, TimeoutScope};
pub use execution::{NodeTiming, RunJob, RunOutput, run_pipeline};
pub use hooks::{Hook, Hooks};
pub use panic::{NodePanic, PanicStage};
pub use registry::{RunnerFactory, RunnerRegistry, RunnerRegistryError};
pub use result::{RunFailure, RunResult, RunStatus};
pub use resume::resume_nodes;
pub use sequential::SequentialRunner;
pub use thread::ThreadRunner;
pub use validate::{TypeCheck, validate_run};

/// Executes the nodes of a planned run. Implementations decide only the
/// order and concurrency; loading, saving, hooks and release are shared.
///
/// An implementation runs each node through [`Execution::run_node`] (which
/// turns a panic into the node's error), calls [`Execution::check_cancelled`]
/// before each node, and starts no node once [`Execution::has_failed`] is
/// true. Register it by name in a [`RunnerRegistry`].
pub trait Runner: Send + Sync {
    /// Short name (`sequential`, `thread`, `async`).
    fn name(&self) -> &'static str;
    /// Runs every node of the job's plan.
    fn execute(&self, exec: &execution::Execution<'_>) -> Result<(), RunError>;
}

/// Builds a built-in runner by name (`sequential`, `thread`, `async`, or
/// the Kedro names of the first two), for CLIs and run specs: [`RunnerRegistry::with_builtins`] then
/// [`RunnerRegistry::build`]. Use a [`RunnerRegistry`] to add custom runners.
pub fn runner_by_name(name: &str, max_workers: Option<usize>) -> Result<Box<dyn Runner>, RunError> {
    RunnerRegistry::with_builtins().build(name, max_workers)
}

pub use execution::Execution;
