//! Panics at the node boundary: caught, turned into node errors.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Where in a node's step a panic happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicStage {
    /// Loading one of the node's inputs (a dataset or a load hook).
    Load,
    /// The node function itself (or a node hook).
    Run,
    /// Saving one of the node's outputs (a dataset or a save hook).
    Save,
    /// The runner's own code around the node (a worker thread).
    Runner,
}

impl PanicStage {
    fn describe(self) -> &'static str {
        match self {
            PanicStage::Load => " while loading its inputs",
            PanicStage::Run => "",
            PanicStage::Save => " while saving its outputs",
            PanicStage::Runner => " in the runner's worker thread",
        }
    }
}

/// A node that panicked: the source of the [`RunError::Node`](crate::RunError::Node)
/// the runner reports instead of propagating the panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node `{node}` panicked{} in run `{run_id}`: {message}", stage.describe())]
pub struct NodePanic {
    /// The node's full name.
    pub node: String,
    /// The run it happened in.
    pub run_id: String,
    /// The panic's message (`&str` and `String` payloads; a placeholder otherwise).
    pub message: String,
    /// Where in the node's step it happened.
    pub stage: PanicStage,
}

/// The message of a panic payload, dropping the payload safely.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    // A payload whose destructor panics must not escape either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    message
}
