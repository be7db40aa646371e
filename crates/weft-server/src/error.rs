//! The server's errors, each with the HTTP status it answers with.

use std::sync::Arc;

use weft_session::SessionError;
use weft_store::StoreError;

/// What went wrong serving a request or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request's body or query is malformed (400).
    #[error("{message}")]
    BadRequest {
        /// What is wrong, with the path of the bad field.
        message: String,
        /// The JSON path of the bad field (`runs[0].runtime_params`), when known.
        path: Option<String>,
    },
    /// No valid bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such session or run (404).
    #[error("{what} `{id}` not found")]
    NotFound {
        /// `session` or `run`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Something asked for does not exist, said in full (404): a dataset a
    /// run did not save, or one without a file.
    #[error("{message}")]
    Missing {
        /// What is missing, naming the run and the dataset.
        message: String,
    },
    /// A dataset's file is larger than the server serves (422).
    #[error("dataset `{dataset}` is {size} bytes; this server serves dataset files up to {limit} bytes")]
    DatasetTooLarge {
        /// The dataset.
        dataset: String,
        /// Its file's size in bytes.
        size: u64,
        /// The limit in bytes (`ServerConfig::dataset_limit`).
        limit: u64,
    },
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The runs are invalid for the project: unknown pipeline, node, dataset,
    /// env or parameter (422), every problem listed.
    #[error("invalid runs: {}", problems.join("; "))]
    Invalid {
        /// Each problem, in words.
        problems: Vec<String>,
    },
    /// A field of the request is well-formed but unusable (422): a session's
    /// `resources.time_limit` that is no Slurm time limit, a memory size
    /// that does not parse.
    #[error("{message}")]
    InvalidField {
        /// What is wrong, naming the field.
        message: String,
        /// The JSON path of the field (`resources.memory`).
        path: String,
    },
    /// An answer to a run waiting for input does not match the node's JSON
    /// Schema (422), every violation with the JSON Pointer of the value.
    #[error("the input does not match the schema of node `{node}`: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidInput {
        /// The `await_input` node.
        node: String,
        /// Each violation.
        problems: Vec<weft_session::answers::AnswerProblem>,
    },
    /// Something the server stored cannot be read back (500).
    #[error("{0}")]
    Internal(String),
    /// Over a limit (429, with `Retry-After`).
    #[error("{message}")]
    TooMany {
        /// Which limit.
        message: String,
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// The body is larger than the server accepts (413).
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server is shutting down (503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store failed (500; the message says which store and what).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Opening a project or a session failed.
    #[error(transparent)]
    Session(Arc<SessionError>),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {message}")]
    Tls {
        /// What is wrong, naming the file.
        message: String,
    },
    /// Binding or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<SessionError> for ServerError {
    fn from(e: SessionError) -> Self {
        ServerError::Session(Arc::new(e))
    }
}

impl ServerError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ServerError::BadRequest { .. } => 400,
            ServerError::Unauthorized => 401,
            ServerError::NotFound { .. } | ServerError::Missing { .. } => 404,
            ServerError::DatasetTooLarge { .. } => 422,
            ServerError::Conflict(_) => 409,
            ServerError::Invalid { .. }
            | ServerError::InvalidField { .. }
            | ServerError::InvalidInput { .. }
            | ServerError::Session(_) => 422,
            ServerError::TooMany { .. } => 429,
            ServerError::TooLarge { .. } => 413,
            ServerError::ShuttingDown => 503,
            ServerError::Store(StoreError::DuplicateRun { .. }) => 409,
            ServerError::Store(_)
            | ServerError::Io { .. }
            | ServerError::Tls { .. }
            | ServerError::Internal(_) => 500,
        }
    }

    /// The machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::BadRequest { .. } => "bad_request",
            ServerError::Unauthorized => "unauthorized",
            ServerError::NotFound { .. } | ServerError::Missing { .. } => "not_found",
            ServerError::DatasetTooLarge { .. } => "dataset_too_large",
            ServerError::Conflict(_) => "conflict",
            ServerError::Invalid { .. } | ServerError::InvalidField { .. } | ServerError::Session(_) => {
                "invalid"
            }
            ServerError::InvalidInput { .. } => "invalid_input",
            ServerError::Internal(_) => "internal",
            ServerError::TooMany { .. } => "too_many_requests",
            ServerError::TooLarge { .. } => "too_large",
            ServerError::ShuttingDown => "shutting_down",
            ServerError::Store(StoreError::DuplicateRun { .. }) => "conflict",
            ServerError::Store(_) => "store",
            ServerError::Io { .. } => "io",
            ServerError::Tls { .. } => "tls",
        }
    }

    /// A bad request without a field path.
    pub fn bad(message: impl Into<String>) -> Self {
        ServerError::BadRequest {
            message: message.into(),
            path: None,
        }
    }
}

/// Splits a session error into its problems (an invalid batch or run lists
/// each one), for 422 bodies.
pub fn problems_of(e: &SessionError) -> Vec<String> {
    match e {
        SessionError::InvalidRun { problems, .. } => problems.iter().map(|p| p.to_string()).collect(),
        SessionError::InvalidBatch { problems, .. } => problems
            .iter()
            .flat_map(|(i, p)| problems_of(p).into_iter().map(move |m| format!("runs[{i}]: {m}")))
            .collect(),
        other => vec![other.to_string()],
    }
}
