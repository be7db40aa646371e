//! Exit codes and the errors that choose them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (also: stdout was closed early, e.g. `| head -1`) |
//! | 1 | failure: the project could not be loaded, a filter selects nothing, a run failed |
//! | 2 | usage: the command line cannot be understood or names what does not exist |
//! | 130 | interrupted by SIGINT or SIGTERM |
//!
//! Usage errors: clap errors (unknown flags, bad values), malformed
//! `--params`/`--load-versions`/`--policy`/`--status`/`--section`/
//! `--type-check`, a sweep given to `weft run`, an unknown `--runner`,
//! `--env` or `--pipeline`, a `--store` URL with an unknown scheme, an
//! invalid project name in `weft new`.

use weft_session::SessionError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A failure (the error chain is printed on stderr).
pub const EXIT_FAILURE: u8 = 1;
/// A usage error.
pub const EXIT_USAGE: u8 = 2;
/// Interrupted by SIGINT or SIGTERM (128 + 2, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The command line asks for something that cannot be understood or does
/// not exist: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// What is wrong, naming the flag or value.
    pub message: String,
    /// The underlying error, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl UsageError {
    /// A usage error with no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            source: None,
        }
    }

    /// A usage error caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        UsageError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The exit code for a command that failed with `error`.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let usage = error
        .chain()
        .any(|cause| cause.is::<UsageError>() || cause.downcast_ref::<SessionError>().is_some_and(is_usage));
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}

/// Session errors that are about the request, not the project or the run:
/// an unknown pipeline, a wrong field (runner, env, run id, ...), or an
/// invalid run or batch made only of those.
fn is_usage(error: &SessionError) -> bool {
    match error {
        SessionError::UnknownPipeline { .. } | SessionError::Field { .. } => true,
        SessionError::InvalidRun { problems } => !problems.is_empty() && problems.iter().all(is_usage),
        SessionError::InvalidBatch { problems } => {
            !problems.is_empty() && problems.iter().all(|(_, e)| is_usage(e))
        }
        _ => false,
    }
}

/// True when the error is a write to a closed pipe (the reader went away).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}
