//! The store: one API over SQLite and PostgreSQL, with shared migrations.
//!
//! Each row keeps a few indexed columns (ids, status, owner, times as
//! integer microseconds so they sort right) and the whole record as JSON
//! text, so both backends share one portable schema. Reads go through a
//! connection pool; every write goes through the handle's writer
//! ([`crate::writer`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use std::str::FromStr;

use crate::writer::{self, Arg, ConnectTo, Job, bind_args, sqlite_sql};
use crate::{NodeTiming, RunFilter, RunRecord, RunStatus, SessionRecord, StoreError};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

/// Marks a migration step that only PostgreSQL applies.
const PG_ONLY: &str = "postgres: ";

/// Versioned migrations: entry `i` upgrades the schema to version `i + 1`.
/// Steps are portable SQL; a step starting with [`PG_ONLY`] is applied on
/// PostgreSQL only.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE weft_sessions (
        session_id TEXT PRIMARY KEY,
        created_us BIGINT NOT NULL,
        record TEXT NOT NULL
    )",
        "CREATE INDEX weft_sessions_created ON weft_sessions (created_us)",
        "CREATE TABLE weft_runs (
        run_id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT,
        start_us BIGINT,
        record TEXT NOT NULL
    )",
        "CREATE INDEX weft_runs_session ON weft_runs (session_id)",
        "CREATE INDEX weft_runs_status ON weft_runs (status)",
    ],
    &[
        // 2: the durable run queue and the sessions of `weft serve` (crate::queue).
        "CREATE TABLE weft_server_sessions (
        session_id TEXT PRIMARY KEY,
        session_key TEXT,
        live BIGINT NOT NULL,
        state TEXT NOT NULL,
        created_us BIGINT NOT NULL,
        heartbeat_us BIGINT NOT NULL,
        record TEXT NOT NULL
    )",
        "CREATE UNIQUE INDEX weft_server_sessions_key ON weft_server_sessions (session_key) WHERE live = 1",
        "CREATE INDEX weft_server_sessions_live ON weft_server_sessions (live, created_us)",
        "CREATE TABLE weft_queue (
        run_id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        spec TEXT NOT NULL,
        lease_owner TEXT,
        lease_expires_us BIGINT,
        attempt BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        enqueued_us BIGINT NOT NULL
    )",
        "CREATE INDEX weft_queue_session ON weft_queue (session_id, state, seq)",
        "CREATE INDEX weft_queue_seq ON weft_queue (seq)",
        // PostgreSQL numbers queue rows from a sequence (concurrent enqueues
        // need not wait for each other); SQLite's writer reads MAX(seq) under
        // its write lock.
        "postgres: CREATE SEQUENCE weft_queue_seq_gen",
        "CREATE INDEX weft_queue_lease ON weft_queue (state, lease_expires_us)",
        "CREATE TABLE weft_idempotency (
        session_id TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        run_ids TEXT NOT NULL,
        PRIMARY KEY (session_id, idem_key)
    )",
    ],
];

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The run store (cheap to clone: a read pool and the writer's handle
/// inside; the last clone dropped commits what is queued).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    target: String,
    writer: Arc<writer::Handle>,
}

/// `host:pid` of this process, recorded as a running run's owner.
pub fn current_owner() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// SQLite's words for a file that is not (or no longer) a database.
fn sqlite_corrupt(e: &sqlx::Error) -> bool {
    let message = e.to_string();
    let code = match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    };
    message.contains("not a database")
        || message.contains("malformed")
        || matches!(code.as_deref(), Some("26" | "11"))
}

/// The error for a failed query: `Corrupt` when SQLite says the file is
/// not a database, `Database` otherwise.
pub(crate) fn classify(target: &str, sqlite: bool, e: sqlx::Error, context: &str) -> StoreError {
    if sqlite && sqlite_corrupt(&e) {
        StoreError::Corrupt {
            path: target.to_string(),
            message: e.to_string(),
        }
    } else {
        StoreError::Database {
            target: target.to_string(),
            context: context.to_string(),
            source: Arc::new(e),
        }
    }
}

/// The scheme of `s` when it looks like a URL (`word:` with two or more
/// letters, so Windows drive letters stay paths).
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (scheme.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

macro_rules! db_err {
    ($self:expr, $ctx:expr) => {
        |e: sqlx::Error| $self.classify(e, &$ctx)
    };
}

macro_rules! json_err {
    ($self:expr, $ctx:expr) => {
        |e: serde_json::Error| StoreError::Malformed {
            target: $self.target.clone(),
            context: $ctx.to_string(),
            source: Arc::new(e),
        }
    };
}

macro_rules! on_backend {
    ($self:expr, $sql:expr, |$q:ident, $pool:ident| $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($pool) => {
                let sql = sqlite_sql($sql);
                let $q = sqlx::query(sqlx::AssertSqlSafe(sql));
                $body
            }
            Backend::Postgres($pool) => {
                let $q = sqlx::query(sqlx::AssertSqlSafe($sql.to_string()));
                $body
            }
        }
    };
}

impl Store {
    /// Opens a store: `postgres://...` (or `postgresql://`), `sqlite:///abs/path.db`,
    /// `sqlite:relative.db`, or a plain path to a SQLite file (created, with
    /// its folder, on first use; WAL mode). Any other `scheme:` prefix
    /// (`mysql://...`, `foo:bar`) is [`StoreError::UnsupportedUrl`]; a path
    /// with a colon in its first component is written `./a:b.db`. Applies
    /// pending migrations; refuses (and leaves untouched) a database with a
    /// newer schema or a file that is not a database; marks runs of dead
    /// local processes `interrupted`.
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
        if let Some(scheme) = scheme(url_or_path)
            && !matches!(scheme, "postgres" | "postgresql" | "sqlite")
        {
            return Err(StoreError::UnsupportedUrl {
                url: mask(url_or_path),
                scheme: scheme.to_string(),
            });
        }
        let store = if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
            let target = mask(url_or_path);
            let unreachable = |e: sqlx::Error| StoreError::Unreachable {
                target: target.clone(),
                message: e.to_string(),
            };
            let options = PgConnectOptions::from_str(url_or_path).map_err(|e| StoreError::Open {
                target: target.clone(),
                message: e.to_string(),
            })?;
            // One direct attempt first: a refused connection or wrong
            // password is reported at once, not after the pool's retries.
            tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options))
                .await
                .map_err(|_| StoreError::Unreachable {
                    target: target.clone(),
                    message: "no answer within 10 s".into(),
                })?
                .map_err(unreachable)?
                .close()
                .await
                .map_err(unreachable)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await
                .map_err(unreachable)?;
            let writer = writer::Handle::start(ConnectTo::Postgres(options), target.clone()).await?;
            Store {
                backend: Backend::Postgres(pool),
                target,
                writer: Arc::new(writer),
            }
        } else {
            let path = url_or_path
                .strip_prefix("sqlite://")
                .or_else(|| url_or_path.strip_prefix("sqlite:"))
                .unwrap_or(url_or_path);
            if path.is_empty() {
                return Err(StoreError::Open {
                    target: url_or_path.to_string(),
                    message: "no file named".into(),
                });
            }
            Store::open_sqlite(Path::new(path)).await?
        };
        store.migrate().await?;
        store.mark_orphans_interrupted().await?;
        Ok(store)
    }

    /// Opens `<project>/.weft/weft.db`.
    pub async fn open_project_default(project_dir: &Path) -> Result<Store, StoreError> {
        Store::open(&project_dir.join(".weft").join("weft.db").display().to_string()).await
    }

    fn sqlite_options(path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
    }

    async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let target = path.display().to_string();
        let open_err = |message: String| StoreError::Open {
            target: target.clone(),
            message,
        };
        let corrupt = |message: String| StoreError::Corrupt {
            path: target.clone(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("cannot create {}: {e}", parent.display())))?;
        }
        if path.is_dir() {
            return Err(open_err("it is a directory".into()));
        }
        // Check the header before SQLite touches the file, so a file that
        // is not a database is never modified.
        if let Ok(mut f) = std::fs::File::open(path) {
            use std::io::Read;
            let mut header = Vec::with_capacity(16);
            f.by_ref()
                .take(16)
                .read_to_end(&mut header)
                .map_err(|e| open_err(e.to_string()))?;
            if !header.is_empty() && header != b"SQLite format 3\0" {
                return Err(corrupt("its header is not `SQLite format 3`".into()));
            }
        }
        // One probe connection that only reads: is it a database, and one
        // this weft understands? Then switch it to WAL once (that needs an
        // exclusive lock busy_timeout cannot wait for, so retry here rather
        // than in every pooled connection).
        let mut probe = SqliteConnection::connect_with(&Store::sqlite_options(path))
            .await
            .map_err(|e| {
                if sqlite_corrupt(&e) {
                    corrupt(e.to_string())
                } else {
                    open_err(e.to_string())
                }
            })?;
        let probed: Result<(), StoreError> = async {
            let tables: i64 = sqlx::query(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'weft_schema'",
            )
            .fetch_one(&mut probe)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| {
                if sqlite_corrupt(&e) {
                    corrupt(e.to_string())
                } else {
                    open_err(e.to_string())
                }
            })?;
            if tables > 0 {
                let found: Option<i64> = sqlx::query("SELECT MAX(version) FROM weft_schema")
                    .fetch_one(&mut probe)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(|e| corrupt(e.to_string()))?;
                if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
                    return Err(StoreError::SchemaTooNew {
                        target: target.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let mode: Result<String, sqlx::Error> = sqlx::query("PRAGMA journal_mode = WAL")
                    .fetch_one(&mut probe)
                    .await
                    .and_then(|r| r.try_get(0));
                match mode {
                    Ok(m) if m.eq_ignore_ascii_case("wal") => return Ok(()),
                    Ok(m) => {
                        return Err(open_err(format!(
                            "cannot switch it to WAL mode (journal mode stays `{m}`)"
                        )));
                    }
                    Err(e) if e.to_string().contains("locked") && std::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(open_err(format!("cannot switch it to WAL mode: {e}"))),
                }
            }
        }
        .await;
        let _ = probe.close().await;
        probed?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(Store::sqlite_options(path))
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let writer =
            writer::Handle::start(ConnectTo::Sqlite(Store::sqlite_options(path)), target.clone()).await?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
            target,
            writer: Arc::new(writer),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The store's file or URL (password masked).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Commits every queued write, stops the writer and closes every
    /// connection (for every clone of this handle). Returns the failures
    /// of deferred writes not yet reported by [`Store::flush`]. Writes
    /// afterwards fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        let flushed = self.writer.shutdown().await;
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
        flushed
    }

    /// Waits until every write sent before it is committed, and reports
    /// the deferred writes that failed since the last flush
    /// ([`StoreError::Deferred`]: a forbidden transition, an unknown run,
    /// or a database failure that lost the group).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.writer
            .call(|reply| Job::Flush {
                take_errors: true,
                reply,
            })
            .await
    }

    /// Read-your-writes: a read waits for this handle's queued deferred
    /// writes (only when there are any).
    async fn settle(&self) -> Result<(), StoreError> {
        if self.writer.has_pending() {
            self.writer
                .call(|reply| Job::Flush {
                    take_errors: false,
                    reply,
                })
                .await?;
        }
        Ok(())
    }

    /// The PostgreSQL pool (queue transactions run there), `None` on SQLite.
    pub(crate) fn pg_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }

    pub(crate) fn writer_handle(&self) -> &writer::Handle {
        &self.writer
    }

    pub(crate) fn closed_error(&self) -> StoreError {
        StoreError::Closed {
            target: self.target.clone(),
        }
    }

    /// Waits for this handle's queued deferred writes (if any).
    pub(crate) async fn settle_writes(&self) -> Result<(), StoreError> {
        self.settle().await
    }

    /// Decoded `record` columns of a read (after this handle's deferred
    /// writes).
    pub(crate) async fn read_records<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        ctx: String,
    ) -> Result<Vec<T>, StoreError> {
        self.list_records(sql, args, ctx).await
    }

    /// `(state, n)` text and integer columns of a read.
    pub(crate) async fn read_rows(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        ctx: String,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.settle().await?;
        Ok(on_backend!(self, sql, |q, pool| bind_args!(q, args)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows
                .into_iter()
                .map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>())
            .map_err(db_err!(self, ctx))?))
    }

    fn classify(&self, e: sqlx::Error, context: &str) -> StoreError {
        classify(
            &self.target,
            matches!(self.backend, Backend::Sqlite(_)),
            e,
            context,
        )
    }

    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let exists_sql = match self.backend {
            Backend::Sqlite(_) => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'weft_schema'"
            }
            Backend::Postgres(_) => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'weft_schema'"
            }
        };
        let ctx = "reading the schema version";
        let exists: i64 = on_backend!(self, exists_sql, |q, pool| q
            .fetch_one(pool)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(db_err!(self, ctx))?);
        if exists == 0 {
            return Ok(None);
        }
        let version: Option<i64> =
            on_backend!(self, "SELECT MAX(version) AS v FROM weft_schema", |q, pool| q
                .fetch_one(pool)
                .await
                .and_then(|r| r.try_get("v"))
                .map_err(db_err!(self, ctx))?);
        Ok(Some(version.unwrap_or(0)))
    }

    fn too_new(&self, found: i64) -> Result<(), StoreError> {
        if found > SCHEMA_VERSION {
            Err(StoreError::SchemaTooNew {
                target: self.target.clone(),
                found,
                supported: SCHEMA_VERSION,
            })
        } else {
            Ok(())
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let current = self.schema_version().await?;
        self.too_new(current.unwrap_or(0))?;
        if current == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        macro_rules! run_migrations {
            ($tx:expr, $fix:expr) => {{
                let mut tx = $tx.map_err(db_err!(self, "starting the migration"))?;
                sqlx::query("CREATE TABLE IF NOT EXISTS weft_schema (version BIGINT NOT NULL)")
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err!(self, "creating the schema table"))?;
                // Another process may have migrated meanwhile: re-read inside the transaction.
                let again: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM weft_schema")
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|r| r.try_get("v"))
                    .map_err(db_err!(self, "reading the schema version"))?;
                let start = again.unwrap_or(0);
                self.too_new(start)?;
                for (i, steps) in MIGRATIONS.iter().enumerate().skip(start as usize) {
                    for step in *steps {
                        // `postgres: ...` steps apply to PostgreSQL only.
                        let step = match step.strip_prefix(PG_ONLY) {
                            Some(pg) if self.backend_name() == "postgres" => pg,
                            Some(_) => continue,
                            None => *step,
                        };
                        sqlx::query(step)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err!(self, format!("applying migration {}", i + 1)))?;
                    }
                    let sql = $fix("INSERT INTO weft_schema (version) VALUES ($1)");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(i as i64 + 1)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err!(self, "recording the schema version"))?;
                }
                tx.commit()
                    .await
                    .map_err(db_err!(self, "committing the migration"))?;
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                run_migrations!(pool.begin_with("BEGIN IMMEDIATE").await, sqlite_sql)
            }
            Backend::Postgres(pool) => {
                // Serialize concurrent migrations across processes.
                let mut conn = pool.acquire().await.map_err(db_err!(self, "migrating"))?;
                sqlx::query("SELECT pg_advisory_lock(7271830)")
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err!(self, "locking for migration"))?;
                let result: Result<(), StoreError> = async {
                    run_migrations!(pool.begin().await, |s: &str| s.to_string());
                    Ok(())
                }
                .await;
                let _ = sqlx::query("SELECT pg_advisory_unlock(7271830)")
                    .execute(&mut *conn)
                    .await;
                result?;
            }
        }
        Ok(())
    }

    /// Records a new session (a duplicate session id is
    /// [`StoreError::DuplicateSession`]; the stored one is untouched).
    pub async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let record = Box::new(s.clone());
        self.writer
            .call(|reply| Job::CreateSession { record, reply })
            .await
    }

    /// Records a session's close time (an unknown session is an error).
    pub async fn close_session(&self, id: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .call(|reply| Job::CloseSession { id, at, reply })
            .await
    }

    /// One session.
    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.get_record(
            "SELECT record FROM weft_sessions WHERE session_id = $1",
            id,
            format!("reading session {id}"),
        )
        .await
    }

    /// One row's JSON record, decoded; `sql` selects `record` by one key.
    async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        key: &str,
        ctx: String,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.list_records(sql, &[Arg::Str(key)], ctx).await?.pop())
    }

    /// Every row's JSON record, decoded, in the query's order; `sql`
    /// selects a `record` column.
    async fn list_records<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        ctx: String,
    ) -> Result<Vec<T>, StoreError> {
        self.settle().await?;
        let rows: Vec<String> = on_backend!(self, sql, |q, pool| bind_args!(q, args)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows
                .into_iter()
                .map(|r| r.try_get::<String, _>("record"))
                .collect::<Result<_, _>>())
            .map_err(db_err!(self, ctx))?);
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(json_err!(self, ctx)))
            .collect()
    }

    /// Sessions, newest (by creation time) first.
    pub async fn list_sessions(&self, limit: Option<u32>) -> Result<Vec<SessionRecord>, StoreError> {
        self.list_records(
            "SELECT record FROM weft_sessions ORDER BY created_us DESC, session_id DESC LIMIT $1",
            &[Arg::I64(i64::from(limit.unwrap_or(u32::MAX)))],
            "listing sessions".into(),
        )
        .await
    }

    /// Records a new run. A run id recorded already is
    /// [`StoreError::DuplicateRun`] and leaves the stored row untouched.
    /// Waits for the commit.
    pub async fn insert_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.insert_runs(std::slice::from_ref(r)).await
    }

    /// Records several new runs in one transaction, all or none (a planned
    /// batch: about 20 µs per run on SQLite, see the crate docs). Any id
    /// recorded already, or twice in `runs`, is
    /// [`StoreError::DuplicateRun`] and nothing is recorded.
    pub async fn insert_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let now = jiff::Timestamp::now();
        let runs: Vec<RunRecord> = runs
            .iter()
            .map(|r| RunRecord {
                updated_at: Some(now),
                ..r.clone()
            })
            .collect();
        self.writer.call(|reply| Job::Insert { runs, reply }).await
    }

    /// Updates a run and waits for the commit. The status change is
    /// validated ([`RunStatus::check_transition`]) against the stored
    /// status in the same atomic statement (`UPDATE ... WHERE status IN
    /// (allowed sources)`), so concurrent writers lose no update and never
    /// make an invalid transition: of two writers finishing the same run,
    /// one wins and the other gets [`StoreError::InvalidTransition`]. The
    /// record replaces the stored one (node timings included).
    pub async fn update_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.write_update(RunRecord {
            updated_at: Some(jiff::Timestamp::now()),
            ..r.clone()
        })
        .await
    }

    /// [`Store::update_run`] of a record as it is (`updated_at` kept).
    async fn write_update(&self, record: RunRecord) -> Result<(), StoreError> {
        self.writer
            .call(|reply| Job::Update {
                record: Box::new(record),
                reply: Some(reply),
            })
            .await
    }

    /// [`Store::update_run`] without waiting: queued for the writer, which
    /// commits it with the next group (within a few milliseconds). Costs
    /// about a microsecond; fails only when the store is closed. A refused
    /// update (forbidden transition, unknown run) is reported by the next
    /// [`Store::flush`] / [`Store::close`]. Reads through this handle see
    /// it; a crash before the commit loses it (see the crate docs).
    pub fn update_run_deferred(&self, r: &RunRecord) -> Result<(), StoreError> {
        let record = Box::new(RunRecord {
            updated_at: Some(jiff::Timestamp::now()),
            ..r.clone()
        });
        self.writer.post(Job::Update { record, reply: None })
    }

    /// A node of a running run finished: appends `timing` to its
    /// `node_timings` and sets its `updated_at` to now (deferred, like
    /// [`Store::update_run_deferred`]). Ignored when the run is not
    /// `running` (it finished or was cancelled meanwhile). Call it after
    /// each node, so a run that dies keeps the timings of its finished
    /// nodes and the time of its last progress as its end time.
    pub fn update_progress(&self, run_id: &str, timing: NodeTiming) -> Result<(), StoreError> {
        self.writer.post(Job::Progress {
            run_id: run_id.to_string(),
            timing,
            at: jiff::Timestamp::now(),
        })
    }

    /// One run.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.get_record(
            "SELECT record FROM weft_runs WHERE run_id = $1",
            run_id,
            format!("reading run {run_id}"),
        )
        .await
    }

    /// Runs, newest first (run ids sort by time), optionally of one session
    /// and/or one status, at most `limit`.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let session = f.session_id.as_deref().unwrap_or_default();
        let status = f.status.map(|s| s.as_str()).unwrap_or_default();
        let before = f.before.as_deref().unwrap_or_default();
        self.list_records(
            "SELECT record FROM weft_runs
             WHERE ($1 = '' OR session_id = $1) AND ($2 = '' OR status = $2) AND ($4 = '' OR run_id < $4)
             ORDER BY run_id DESC LIMIT $3",
            &[
                Arg::Str(session),
                Arg::Str(status),
                Arg::I64(i64::from(f.limit.unwrap_or(u32::MAX))),
                Arg::Str(before),
            ],
            "listing runs".into(),
        )
        .await
    }

    /// Marks `interrupted` every `running` or `queued` run whose owner
    /// process on this host is gone (a crash or `kill -9`); runs owned by
    /// other hosts are left alone. An interrupted run keeps the time of its
    /// last recorded progress (`updated_at`) as its end time, and the node
    /// timings recorded so far. Runs in the service queue
    /// ([`Store::enqueue`]) are left alone: queued ones wait for the next
    /// server, leased ones are [`Store::expire_leases`]'s. Returns their
    /// ids. Called by [`Store::open`].
    pub async fn mark_orphans_interrupted(&self) -> Result<Vec<String>, StoreError> {
        let host = hostname();
        let rows: Vec<(String, Option<String>)> = on_backend!(
            self,
            // Runs in the service queue wait for the next server (queued)
            // or for `expire_leases` (leased): not orphans.
            "SELECT run_id, owner FROM weft_runs WHERE status IN ('running', 'queued')
             AND run_id NOT IN (SELECT run_id FROM weft_queue WHERE state <> 'done')",
            |q, pool| q
                .fetch_all(pool)
                .await
                .and_then(|rows| rows
                    .into_iter()
                    .map(|r| Ok((
                        r.try_get::<String, _>("run_id")?,
                        r.try_get::<Option<String>, _>("owner")?
                    )))
                    .collect::<Result<_, sqlx::Error>>())
                .map_err(db_err!(self, "finding orphaned runs"))?
        );
        let mut interrupted = Vec::new();
        for (run_id, owner) in rows {
            let Some((owner_host, pid)) = owner.as_deref().and_then(|o| o.rsplit_once(':')) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            if owner_host != host || process_alive(pid) {
                continue;
            }
            let Some(mut record) = self.get_run(&run_id).await? else {
                continue;
            };
            if record.status.is_terminal() {
                continue;
            }
            record.status = RunStatus::Interrupted;
            // It died after its last recorded progress; records written
            // before `updated_at` existed fall back to now.
            let died = record.updated_at.unwrap_or_else(jiff::Timestamp::now);
            let end = *record.end_time.get_or_insert(died);
            if record.duration_ms.is_none()
                && let Some(start) = record.start_time
            {
                record.duration_ms =
                    Some((end.as_microsecond() - start.as_microsecond()).max(0) as f64 / 1000.0);
            }
            record.error.get_or_insert_with(|| crate::RunErrorRecord {
                kind: "interrupted".into(),
                message: format!(
                    "the process running it ({}) is gone",
                    owner.as_deref().unwrap_or("?")
                ),
                node: None,
                causes: vec![],
            });
            match self.write_update(record).await {
                Ok(()) => interrupted.push(run_id),
                Err(StoreError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask("/tmp/x.db"), "/tmp/x.db");
        assert_eq!(sqlite_sql("a = $1 AND b = $2"), "a = ?1 AND b = ?2");
    }
}
