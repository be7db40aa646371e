//! The store: one API over SQLite and PostgreSQL, with shared migrations.
//!
//! Each row keeps a few indexed columns (ids, status, owner, times as
//! integer microseconds so they sort right) and the whole record as JSON
//! text, so both backends share one portable schema.

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use std::str::FromStr;

use crate::{RunFilter, RunRecord, RunStatus, SessionRecord, StoreError};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 1;

/// Versioned migrations: entry `i` upgrades the schema to version `i + 1`.
const MIGRATIONS: &[&[&str]] = &[&[
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
]];

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The run store (cheap to clone: a connection pool inside).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    target: String,
}

/// `host:pid` of this process, recorded as a running run's owner.
pub fn current_owner() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn process_alive(pid: u32) -> bool {
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

fn micros(t: jiff::Timestamp) -> i64 {
    t.as_microsecond()
}

/// SQLite numbers its parameters `?1`; PostgreSQL `$1`. Queries are
/// written once with `$n`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

macro_rules! db_err {
    ($self:expr, $ctx:expr) => {
        |e: sqlx::Error| $self.classify(e, &$ctx)
    };
}

macro_rules! json_err {
    ($self:expr, $ctx:expr) => {
        |e: serde_json::Error| StoreError::Database {
            target: $self.target.clone(),
            context: $ctx.to_string(),
            message: format!("malformed record: {e}"),
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.is_unique_violation(),
        _ => false,
    }
}

impl Store {
    /// Opens a store: `postgres://...` (or `postgresql://`), `sqlite:///abs/path.db`,
    /// `sqlite:relative.db`, or a plain path to a SQLite file (created, with
    /// its folder, on first use; WAL mode). Applies pending migrations;
    /// refuses (and leaves untouched) a database with a newer schema or a
    /// file that is not a database; marks runs of dead local processes
    /// `interrupted`.
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
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
                .connect_with(options)
                .await
                .map_err(unreachable)?;
            Store {
                backend: Backend::Postgres(pool),
                target,
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
        Ok(Store {
            backend: Backend::Sqlite(pool),
            target,
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

    /// Closes every connection (waits for them to be returned). The store
    /// must not be used afterwards.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    fn classify(&self, e: sqlx::Error, context: &str) -> StoreError {
        match self.backend {
            Backend::Sqlite(_) if sqlite_corrupt(&e) => StoreError::Corrupt {
                path: self.target.clone(),
                message: e.to_string(),
            },
            _ => StoreError::Database {
                target: self.target.clone(),
                context: context.to_string(),
                message: e.to_string(),
            },
        }
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
                        sqlx::query(*step)
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

    /// Records a new session (a duplicate session id is an error).
    pub async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let ctx = format!("recording session {}", s.session_id);
        let record = serde_json::to_string(s).map_err(json_err!(self, ctx))?;
        let sql = "INSERT INTO weft_sessions (session_id, created_us, record) VALUES ($1, $2, $3)";
        on_backend!(self, sql, |q, pool| q
            .bind(&s.session_id)
            .bind(micros(s.created_at))
            .bind(&record)
            .execute(pool)
            .await
            .map_err(|e| if is_unique_violation(&e) {
                StoreError::DuplicateSession {
                    session_id: s.session_id.clone(),
                    target: self.target.clone(),
                }
            } else {
                self.classify(e, &ctx)
            })
            .map(|_| ())?);
        Ok(())
    }

    /// Records a session's close time (an unknown session is an error).
    pub async fn close_session(&self, id: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
        let Some(mut s) = self.get_session(id).await? else {
            return Err(StoreError::SessionNotFound {
                session_id: id.to_string(),
                target: self.target.clone(),
            });
        };
        let ctx = format!("closing session {id}");
        s.closed_at = Some(at);
        let record = serde_json::to_string(&s).map_err(json_err!(self, ctx))?;
        on_backend!(
            self,
            "UPDATE weft_sessions SET record = $1 WHERE session_id = $2",
            |q, pool| q
                .bind(&record)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(db_err!(self, ctx))?
        );
        Ok(())
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
        let row: Option<String> = on_backend!(self, sql, |q, pool| q
            .bind(key)
            .fetch_optional(pool)
            .await
            .and_then(|r| r.map(|r| r.try_get::<String, _>("record")).transpose())
            .map_err(db_err!(self, ctx))?);
        row.map(|r| serde_json::from_str(&r).map_err(json_err!(self, ctx)))
            .transpose()
    }

    /// Sessions, newest (by creation time) first.
    pub async fn list_sessions(&self, limit: Option<u32>) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = "SELECT record FROM weft_sessions ORDER BY created_us DESC, session_id DESC LIMIT $1";
        let rows: Vec<String> = on_backend!(self, sql, |q, pool| q
            .bind(i64::from(limit.unwrap_or(u32::MAX)))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows
                .into_iter()
                .map(|r| r.try_get::<String, _>("record"))
                .collect::<Result<_, _>>())
            .map_err(db_err!(self, "listing sessions"))?);
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(json_err!(self, "decoding a session")))
            .collect()
    }

    /// Records a new run (a duplicate run id is an error).
    pub async fn insert_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.insert_runs(std::slice::from_ref(r)).await
    }

    /// Records several new runs in one transaction: all or none.
    pub async fn insert_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let sql = "INSERT INTO weft_runs (run_id, session_id, status, owner, start_us, record) VALUES ($1, $2, $3, $4, $5, $6)";
        let encoded = runs
            .iter()
            .map(|r| serde_json::to_string(r).map_err(json_err!(self, format!("encoding run {}", r.run_id))))
            .collect::<Result<Vec<_>, _>>()?;
        macro_rules! insert_all {
            ($tx:expr, $sql:expr) => {{
                let mut tx = $tx.map_err(db_err!(self, "recording runs"))?;
                insert_all!(@rows tx, $sql);
                tx.commit().await.map_err(db_err!(self, "recording runs"))?;
            }};
            (single $conn:expr, $sql:expr) => {{
                let mut tx = $conn.map_err(db_err!(self, "recording runs"))?;
                insert_all!(@rows tx, $sql);
            }};
            (@rows $tx:ident, $sql:expr) => {{
                let tx = &mut $tx;
                for (r, record) in runs.iter().zip(&encoded) {
                    sqlx::query(sqlx::AssertSqlSafe($sql.to_string()))
                        .bind(&r.run_id)
                        .bind(&r.session_id)
                        .bind(r.status.as_str())
                        .bind(r.owner.as_deref())
                        .bind(r.start_time.map(micros))
                        .bind(record)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| {
                            if is_unique_violation(&e) {
                                StoreError::DuplicateRun {
                                    run_id: r.run_id.clone(),
                                    target: self.target.clone(),
                                }
                            } else {
                                self.classify(e, &format!("recording run {}", r.run_id))
                            }
                        })?;
                }
            }};
        }
        // One row is one atomic statement: no explicit transaction needed.
        let single = runs.len() == 1;
        match &self.backend {
            Backend::Sqlite(pool) if single => {
                insert_all!(single pool.acquire().await, &sqlite_sql(sql))
            }
            Backend::Postgres(pool) if single => insert_all!(single pool.acquire().await, sql),
            Backend::Sqlite(pool) => {
                insert_all!(pool.begin_with("BEGIN IMMEDIATE").await, &sqlite_sql(sql))
            }
            Backend::Postgres(pool) => insert_all!(pool.begin().await, sql),
        }
        Ok(())
    }

    /// Updates a run. The status change is validated
    /// ([`RunStatus::check_transition`]) against the stored status in the
    /// same atomic statement (`UPDATE ... WHERE status IN (allowed
    /// sources)`), so concurrent writers lose no update and never make an
    /// invalid transition: of two writers finishing the same run, one wins
    /// and the other gets [`StoreError::InvalidTransition`].
    pub async fn update_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        let ctx = format!("updating run {}", r.run_id);
        let record = serde_json::to_string(r).map_err(json_err!(self, ctx))?;
        let sources: Vec<&str> = RunStatus::sources(r.status)
            .into_iter()
            .map(RunStatus::as_str)
            .collect();
        let placeholders: Vec<String> = (0..sources.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "UPDATE weft_runs SET status = $1, owner = $2, start_us = $3, record = $4 WHERE run_id = $5 AND status IN ({})",
            if placeholders.is_empty() {
                "NULL".to_string()
            } else {
                placeholders.join(", ")
            }
        );
        let affected = on_backend!(self, &sql, |q, pool| {
            let mut q = q
                .bind(r.status.as_str())
                .bind(r.owner.as_deref())
                .bind(r.start_time.map(micros))
                .bind(&record)
                .bind(&r.run_id);
            for s in &sources {
                q = q.bind(*s);
            }
            q.execute(pool).await.map_err(db_err!(self, ctx))?.rows_affected()
        });
        if affected == 1 {
            return Ok(());
        }
        match self.stored_status(&r.run_id).await? {
            None => Err(StoreError::RunNotFound {
                run_id: r.run_id.clone(),
                target: self.target.clone(),
            }),
            Some(stored) => {
                RunStatus::check_transition(&r.run_id, stored, r.status)?;
                // Allowed now but not when the update ran: it changed meanwhile.
                Err(StoreError::InvalidTransition {
                    run_id: r.run_id.clone(),
                    from: stored.to_string(),
                    to: r.status.to_string(),
                })
            }
        }
    }

    async fn stored_status(&self, run_id: &str) -> Result<Option<RunStatus>, StoreError> {
        let ctx = format!("reading run {run_id}");
        let status: Option<String> = on_backend!(
            self,
            "SELECT status FROM weft_runs WHERE run_id = $1",
            |q, pool| q
                .bind(run_id)
                .fetch_optional(pool)
                .await
                .and_then(|r| r.map(|r| r.try_get::<String, _>("status")).transpose())
                .map_err(db_err!(self, ctx))?
        );
        status
            .map(|s| {
                s.parse::<RunStatus>().map_err(|message| StoreError::Database {
                    target: self.target.clone(),
                    context: ctx.clone(),
                    message,
                })
            })
            .transpose()
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
        let sql = "SELECT record FROM weft_runs
                   WHERE ($1 = '' OR session_id = $1) AND ($2 = '' OR status = $2)
                   ORDER BY run_id DESC LIMIT $3";
        let session = f.session_id.clone().unwrap_or_default();
        let status = f.status.map(|s| s.as_str().to_string()).unwrap_or_default();
        let rows: Vec<String> = on_backend!(self, sql, |q, pool| q
            .bind(&session)
            .bind(&status)
            .bind(i64::from(f.limit.unwrap_or(u32::MAX)))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows
                .into_iter()
                .map(|r| r.try_get::<String, _>("record"))
                .collect::<Result<_, _>>())
            .map_err(db_err!(self, "listing runs"))?);
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(json_err!(self, "decoding a run")))
            .collect()
    }

    /// Marks `interrupted` every `running` run whose owner process on this
    /// host is gone (a crash or `kill -9`); runs owned by other hosts are
    /// left alone. Returns their ids. Called by [`Store::open`].
    pub async fn mark_orphans_interrupted(&self) -> Result<Vec<String>, StoreError> {
        let host = hostname();
        let rows: Vec<(String, Option<String>)> = on_backend!(
            self,
            "SELECT run_id, owner FROM weft_runs WHERE status = 'running'",
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
            if record.status != RunStatus::Running {
                continue;
            }
            record.status = RunStatus::Interrupted;
            let now = jiff::Timestamp::now();
            record.end_time.get_or_insert(now);
            if record.duration_ms.is_none()
                && let Some(start) = record.start_time
            {
                record.duration_ms = Some((now.as_microsecond() - start.as_microsecond()) as f64 / 1000.0);
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
            match self.update_run(&record).await {
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
