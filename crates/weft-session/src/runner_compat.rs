//! TEMPORARY: stands in for weft-runner's RunnerRegistry and RunFailed until
//! the runner branch merges.
use weft_runner::{RunError, RunJob, RunOutput, Runner};

pub struct RunnerRegistry;
impl RunnerRegistry {
    pub fn with_builtins() -> Self {
        RunnerRegistry
    }
    pub fn build(&self, name: &str, max_workers: Option<usize>) -> Result<Box<dyn Runner>, RunError> {
        weft_runner::runner_by_name(name, max_workers)
    }
}

pub struct RunFailed {
    pub error: RunError,
    pub node_timings: Vec<weft_core::NodeTiming>,
    pub skipped_nodes: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn run_pipeline(job: &RunJob<'_>, runner: &dyn Runner) -> Result<RunOutput, RunFailed> {
    weft_runner::run_pipeline(job, runner).map_err(|error| RunFailed {
        error,
        node_timings: Vec::new(),
        skipped_nodes: Vec::new(),
        warnings: Vec::new(),
    })
}
