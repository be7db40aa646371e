use std::sync::Arc;

/// Who has to act on a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The caller asked for something invalid (duplicate id, unknown run,
    /// forbidden status change).
    User,
    /// The environment: file, server, credentials, a database written by a
    /// newer weft.
    Environment,
    /// A query failed unexpectedly or a stored record does not decode.
    Internal,
}

/// Everything that can go wrong with the run store.
///
/// Grouped by fault (see [`StoreError::fault`]): `Open`, `Corrupt`,
/// `Unreachable` and `SchemaTooNew` are the environment; `UnsupportedUrl`,
/// `Closed`, `DuplicateRun`, `RunNotFound`, `DuplicateSession`,
/// `SessionNotFound` and `InvalidTransition` are callers' mistakes;
/// `Deferred` has the fault of its first failure; `Malformed` (a record
/// that does not decode) and `Database` is anything else
/// the database reported. Every variant names the file/URL or the run or
/// session it is about. Database and JSON causes are kept as typed
/// sources, shared (`Arc<sqlx::Error>`, `Arc<serde_json::Error>`) so an
/// error can be cloned to every caller of a failed group commit.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// `--store` / `[store] url` names a scheme weft does not know.
    #[error(
        "unsupported run store `{url}`: unknown scheme `{scheme}:`; use a SQLite file path (`.weft/weft.db`), `sqlite://PATH`, `sqlite:PATH`, `postgres://USER:PASSWORD@HOST:PORT/DB` or `postgresql://...`"
    )]
    UnsupportedUrl {
        /// What was given (password masked).
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// The store was closed (or its writer stopped) and cannot take writes.
    #[error("run store {target} is closed")]
    Closed {
        /// The file or URL.
        target: String,
    },
    /// Deferred writes ([`crate::Store::update_run_deferred`],
    /// [`crate::Store::update_progress`]) failed; reported by the next
    /// [`crate::Store::flush`] or [`crate::Store::close`].
    #[error("run store {target}: {failed} deferred write(s) failed; the first: {first}")]
    Deferred {
        /// The file or URL.
        target: String,
        /// How many failed since the last flush.
        failed: usize,
        /// The first failure.
        #[source]
        first: Box<StoreError>,
    },
    /// The store could not be opened (bad path, permissions, ...).
    #[error("cannot open run store {target}: {message}")]
    Open {
        /// The file or URL (password masked).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The SQLite file is not a database or is damaged (left untouched).
    #[error("run store {path} is not a valid SQLite database ({message}); it was left untouched")]
    Corrupt {
        /// The file.
        path: String,
        /// What SQLite said.
        message: String,
    },
    /// The server cannot be reached or refused the credentials.
    #[error("cannot connect to run store {target}: {message}")]
    Unreachable {
        /// The URL (password masked); it names the host.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The database was written by a newer weft (left untouched).
    #[error(
        "run store {target} has schema version {found}, newer than this weft supports ({supported}); upgrade weft or use another store. The store was left untouched"
    )]
    SchemaTooNew {
        /// The file or URL.
        target: String,
        /// Version found.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A run id is recorded already.
    #[error("run {run_id} is already recorded in {target}")]
    DuplicateRun {
        /// The run.
        run_id: String,
        /// The store.
        target: String,
    },
    /// No such run.
    #[error("run {run_id} is not recorded in {target}")]
    RunNotFound {
        /// The run.
        run_id: String,
        /// The store.
        target: String,
    },
    /// A session id is recorded already.
    #[error("session {session_id} is already recorded in {target}")]
    DuplicateSession {
        /// The session.
        session_id: String,
        /// The store.
        target: String,
    },
    /// No such session.
    #[error("session {session_id} is not recorded in {target}")]
    SessionNotFound {
        /// The session.
        session_id: String,
        /// The store.
        target: String,
    },
    /// A status change the run lifecycle does not allow
    /// (see [`crate::RunStatus::can_transition`]).
    #[error("run {run_id}: cannot go from `{from}` to `{to}`")]
    InvalidTransition {
        /// The run.
        run_id: String,
        /// Its stored status.
        from: String,
        /// The requested status.
        to: String,
    },
    /// Any other database error.
    #[error("run store {target}: query failed ({context}): {source}")]
    Database {
        /// The file or URL (password masked).
        target: String,
        /// What was being done (names the run or session when there is one).
        context: String,
        /// What the database said.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// A record does not encode, or a stored one does not decode.
    #[error("run store {target}: malformed record ({context}): {source}")]
    Malformed {
        /// The file or URL (password masked).
        target: String,
        /// What was being done (names the run or session when there is one).
        context: String,
        /// The JSON error.
        #[source]
        source: Arc<serde_json::Error>,
    },
}

impl StoreError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Open { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Unreachable { .. }
            | StoreError::SchemaTooNew { .. } => Fault::Environment,
            StoreError::DuplicateRun { .. }
            | StoreError::RunNotFound { .. }
            | StoreError::DuplicateSession { .. }
            | StoreError::SessionNotFound { .. }
            | StoreError::InvalidTransition { .. } => Fault::User,
            StoreError::UnsupportedUrl { .. } | StoreError::Closed { .. } => Fault::User,
            StoreError::Deferred { first, .. } => first.fault(),
            StoreError::Database { .. } | StoreError::Malformed { .. } => Fault::Internal,
        }
    }
}

impl From<weft_core::TransitionError> for StoreError {
    fn from(e: weft_core::TransitionError) -> Self {
        StoreError::InvalidTransition {
            run_id: e.run_id,
            from: e.from.to_string(),
            to: e.to.to_string(),
        }
    }
}
