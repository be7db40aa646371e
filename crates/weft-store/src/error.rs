/// Everything that can go wrong with the run store.
///
/// `Open`, `Corrupt` and `Unreachable` are the environment (file, server,
/// credentials); `SchemaTooNew` means another weft version owns the
/// database; `Duplicate`, `NotFound` and `InvalidTransition` are callers'
/// mistakes; `Database` is anything else the database reported.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("cannot open run store {target}: {message}")]
    Open {
        /// The file or URL (password masked).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The SQLite file is not a database (left untouched).
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
        /// The URL (password masked).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The database was written by a newer weft (left untouched).
    #[error(
        "run store {target} has schema version {found}, newer than this weft supports ({supported}); upgrade weft. The store was left untouched"
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
    #[error("run {0} is already recorded")]
    Duplicate(String),
    /// No such run.
    #[error("run {0} is not recorded")]
    NotFound(String),
    /// A status change the run lifecycle does not allow.
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
    #[error("run store query failed ({context}): {message}")]
    Database {
        /// What was being done.
        context: String,
        /// What the database said.
        message: String,
    },
}
