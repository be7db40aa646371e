use crate::{Execution, RunError, Runner};

/// Runs nodes one after another in topological order, on the caller's thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequentialRunner;

impl Runner for SequentialRunner {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        for i in 0..exec.job().pipeline.nodes().len() {
            if !exec.should_run(i) {
                continue;
            }
            exec.check_cancelled()?;
            exec.run_node(i)?;
        }
        Ok(())
    }
}
