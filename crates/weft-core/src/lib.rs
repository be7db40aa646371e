//! The run vocabulary every layer shares: one definition each of run
//! status (with its transitions), failure, node timing, run context and run
//! result. The runner produces them, the session and the store record them,
//! the CLI and (later) the HTTP API print them; none of those layers keeps a
//! mirrored copy.

pub mod metrics;
mod result;
mod status;

pub use metrics::{Histogram, RunMetrics, RunObservation};
pub use result::{NodeTiming, PendingInput, RunContext, RunFailure, RunResult, ValidationStats};
pub use status::{RunStatus, TransitionError};
