//! The run vocabulary lives in `weft-core`; the runner only knows how to
//! flatten its own error into a [`RunFailure`].

pub use weft_core::{RunFailure, RunResult, RunStatus};

impl From<&crate::RunError> for RunFailure {
    fn from(e: &crate::RunError) -> Self {
        RunFailure {
            kind: e.kind().to_string(),
            message: e.to_string(),
            node: e.node().map(str::to_string),
            causes: e.chain(),
        }
    }
}
