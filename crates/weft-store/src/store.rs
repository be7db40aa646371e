//! The store: one API over SQLite and PostgreSQL, with shared migrations.
//!
//! Each row keeps a few indexed columns (ids, status, owner) and the whole
//! record as JSON text, so both backends share one portable schema.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{RunFilter, RunRecord, RunStatus, SessionRecord, StoreError};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 1;

/// Versioned migrations: entry `i` upgrades the schema to version `i + 1`.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE weft_sessions (
        session_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        record TEXT NOT NULL
    )",
    "CREATE TABLE weft_runs (
        run_id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT,
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

fn db_err(context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        context: context.to_string(),
        message: e.to_string(),
    }
}

fn json_err(context: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        context: context.to_string(),
        message: format!("malformed record: {e}"),
    }
}

/// SQLite numbers its parameters `?1`; PostgreSQL `$1`. Queries are
/// written once with `$n`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
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
    /// Opens a store: `postgres://...`, `sqlite://path`, or a plain path to a
    /// SQLite file (created on first use). Applies pending migrations;
    /// refuses (and leaves untouched) a database with a newer schema; marks
    /// runs of dead local processes `interrupted`.
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
        let store = if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
            let target = mask(url_or_path);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url_or_path)
                .await
                .map_err(|e| StoreError::Unreachable {
                    target: target.clone(),
                    message: e.to_string(),
                })?;
            Store {
                backend: Backend::Postgres(pool),
                target,
            }
        } else {
            let path = url_or_path
                .strip_prefix("sqlite://")
                .or_else(|| url_or_path.strip_prefix("sqlite:"))
                .unwrap_or(url_or_path);
            Store::open_sqlite(Path::new(path)).await?
        };
        store.migrate().await?;
        store.mark_orphans_interrupted().await?;
        Ok(store)
    }

    /// Opens `<project>/.weft/weft.db`.
    pub async fn open_project_default(project_dir: &Path) -> Result<Store, StoreError> {
        let dir = project_dir.join(".weft");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Open {
            target: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Store::open(&dir.join("weft.db").display().to_string()).await
    }

    async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let target = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                target: target.clone(),
                message: e.to_string(),
            })?;
        }
        // Check the header before SQLite touches the file, so a file that
        // is not a database is never modified (WAL setup would write to it).
        if let Ok(bytes) = std::fs::read(path).map(|b| b.into_iter().take(16).collect::<Vec<u8>>())
            && !bytes.is_empty()
            && bytes != b"SQLite format 3\0"
        {
            return Err(StoreError::Corrupt {
                path: target,
                message: "file header is not `SQLite format 3`".into(),
            });
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| StoreError::Open {
                target: target.clone(),
                message: e.to_string(),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                let message = e.to_string();
                if message.contains("not a database") || message.contains("malformed") {
                    StoreError::Corrupt {
                        path: target.clone(),
                        message,
                    }
                } else {
                    StoreError::Open {
                        target: target.clone(),
                        message,
                    }
                }
            })?;
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

    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let exists_sql = match self.backend {
            Backend::Sqlite(_) => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'weft_schema'"
            }
            Backend::Postgres(_) => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'weft_schema'"
            }
        };
        let exists: i64 = on_backend!(self, exists_sql, |q, pool| q
            .fetch_one(pool)
            .await
            .map_err(|e| self.classify(e, "reading the schema version"))?
            .try_get("n")
            .map_err(db_err("reading the schema version"))?);
        if exists == 0 {
            return Ok(None);
        }
        let version: Option<i64> =
            on_backend!(self, "SELECT MAX(version) AS v FROM weft_schema", |q, pool| q
                .fetch_one(pool)
                .await
                .map_err(db_err("reading the schema version"))?
                .try_get("v")
                .map_err(db_err("reading the schema version"))?);
        Ok(Some(version.unwrap_or(0)))
    }

    fn classify(&self, e: sqlx::Error, context: &str) -> StoreError {
        let message = e.to_string();
        match self.backend {
            Backend::Sqlite(_) if message.contains("not a database") || message.contains("malformed") => {
                StoreError::Corrupt {
                    path: self.target.clone(),
                    message,
                }
            }
            _ => StoreError::Database {
                context: context.to_string(),
                message,
            },
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let current = self.schema_version().await?;
        if let Some(v) = current
            && v > SCHEMA_VERSION
        {
            return Err(StoreError::SchemaTooNew {
                target: self.target.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        let from = current.unwrap_or(0);
        if from == SCHEMA_VERSION {
            return Ok(());
        }
        macro_rules! run_migrations {
            ($pool:expr, $fix:expr) => {{
                let mut tx = $pool
                    .begin()
                    .await
                    .map_err(db_err("starting the migration"))?;
                if current.is_none() {
                    sqlx::query("CREATE TABLE IF NOT EXISTS weft_schema (version BIGINT NOT NULL)")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("creating the schema table"))?;
                }
                // Another process may have migrated meanwhile: re-read inside the transaction.
                let again: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM weft_schema")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err("reading the schema version"))?
                    .try_get("v")
                    .map_err(db_err("reading the schema version"))?;
                let start = again.unwrap_or(0);
                for (i, steps) in MIGRATIONS.iter().enumerate().skip(start as usize) {
                    for step in *steps {
                        sqlx::query(*step)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err("applying a migration"))?;
                    }
                    let sql = $fix("INSERT INTO weft_schema (version) VALUES ($1)");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(i as i64 + 1)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("recording the schema version"))?;
                }
                tx.commit()
                    .await
                    .map_err(db_err("committing the migration"))?;
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => run_migrations!(pool, sqlite_sql),
            Backend::Postgres(pool) => {
                // Serialize concurrent migrations across processes.
                let mut conn = pool.acquire().await.map_err(db_err("migrating"))?;
                sqlx::query("SELECT pg_advisory_lock(7271830)")
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err("locking for migration"))?;
                let result: Result<(), StoreError> = async {
                    run_migrations!(pool, |s: &str| s.to_string());
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

    /// Records a new session.
    pub async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(s).map_err(json_err("encoding a session"))?;
        let sql = "INSERT INTO weft_sessions (session_id, created_at, record) VALUES ($1, $2, $3)";
        on_backend!(self, sql, |q, pool| q
            .bind(&s.session_id)
            .bind(s.created_at.to_string())
            .bind(&record)
            .execute(pool)
            .await
            .map_err(db_err("recording a session"))?
            .rows_affected());
        Ok(())
    }

    /// Records a session's close time.
    pub async fn close_session(&self, id: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
        let Some(mut s) = self.get_session(id).await? else {
            return Err(StoreError::Database {
                context: "closing a session".into(),
                message: format!("session {id} is not recorded"),
            });
        };
        s.closed_at = Some(at);
        let record = serde_json::to_string(&s).map_err(json_err("encoding a session"))?;
        on_backend!(
            self,
            "UPDATE weft_sessions SET record = $1 WHERE session_id = $2",
            |q, pool| q
                .bind(&record)
                .bind(id)
                .execute(pool)
                .await
                .map_err(db_err("closing a session"))?
                .rows_affected()
        );
        Ok(())
    }

    /// One session.
    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<String> = on_backend!(
            self,
            "SELECT record FROM weft_sessions WHERE session_id = $1",
            |q, pool| q
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(db_err("reading a session"))?
                .map(|r| r.try_get::<String, _>("record"))
                .transpose()
                .map_err(db_err("reading a session"))?
        );
        row.map(|r| serde_json::from_str(&r).map_err(json_err("decoding a session")))
            .transpose()
    }

    /// Sessions, newest first.
    pub async fn list_sessions(&self, limit: Option<u32>) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = "SELECT record FROM weft_sessions ORDER BY session_id DESC LIMIT $1";
        let rows: Vec<String> = on_backend!(self, sql, |q, pool| q
            .bind(i64::from(limit.unwrap_or(u32::MAX)))
            .fetch_all(pool)
            .await
            .map_err(db_err("listing sessions"))?
            .into_iter()
            .map(|r| r.try_get::<String, _>("record"))
            .collect::<Result<_, _>>()
            .map_err(db_err("listing sessions"))?);
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(json_err("decoding a session")))
            .collect()
    }

    /// Records a new run (a duplicate run id is an error).
    pub async fn insert_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.insert_runs(std::slice::from_ref(r)).await
    }

    /// Records several new runs in one transaction.
    pub async fn insert_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO weft_runs (run_id, session_id, status, owner, record) VALUES ($1, $2, $3, $4, $5)";
        macro_rules! insert_all {
            ($pool:expr, $sql:expr) => {{
                let mut tx = $pool.begin().await.map_err(db_err("recording runs"))?;
                for r in runs {
                    let record = serde_json::to_string(r).map_err(json_err("encoding a run"))?;
                    sqlx::query(sqlx::AssertSqlSafe($sql.to_string()))
                        .bind(&r.run_id)
                        .bind(&r.session_id)
                        .bind(r.status.as_str())
                        .bind(r.owner.as_deref())
                        .bind(&record)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            if is_unique_violation(&e) {
                                StoreError::Duplicate(r.run_id.clone())
                            } else {
                                db_err("recording a run")(e)
                            }
                        })?;
                }
                tx.commit().await.map_err(db_err("recording runs"))?;
            }};
        }
        match &self.backend {
            Backend::Sqlite(pool) => insert_all!(pool, &sqlite_sql(sql)),
            Backend::Postgres(pool) => insert_all!(pool, sql),
        }
        Ok(())
    }

    /// Updates a run. The status change is validated against the stored
    /// status in the same statement, so concurrent writers lose no update
    /// and never make an invalid transition.
    pub async fn update_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(r).map_err(json_err("encoding a run"))?;
        let sources: Vec<&str> = RunStatus::sources(r.status)
            .into_iter()
            .map(RunStatus::as_str)
            .collect();
        let placeholders: Vec<String> = (0..sources.len()).map(|i| format!("${}", i + 5)).collect();
        let sql = format!(
            "UPDATE weft_runs SET status = $1, owner = $2, record = $3 WHERE run_id = $4 AND status IN ({})",
            placeholders.join(", ")
        );
        let affected = on_backend!(self, &sql, |q, pool| {
            let mut q = q
                .bind(r.status.as_str())
                .bind(r.owner.as_deref())
                .bind(&record)
                .bind(&r.run_id);
            for s in &sources {
                q = q.bind(*s);
            }
            q.execute(pool)
                .await
                .map_err(db_err("updating a run"))?
                .rows_affected()
        });
        if affected == 1 {
            return Ok(());
        }
        match self.get_run(&r.run_id).await? {
            None => Err(StoreError::NotFound(r.run_id.clone())),
            Some(stored) => Err(StoreError::InvalidTransition {
                run_id: r.run_id.clone(),
                from: stored.status.to_string(),
                to: r.status.to_string(),
            }),
        }
    }

    /// One run.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<String> = on_backend!(
            self,
            "SELECT record FROM weft_runs WHERE run_id = $1",
            |q, pool| q
                .bind(run_id)
                .fetch_optional(pool)
                .await
                .map_err(db_err("reading a run"))?
                .map(|r| r.try_get::<String, _>("record"))
                .transpose()
                .map_err(db_err("reading a run"))?
        );
        row.map(|r| serde_json::from_str(&r).map_err(json_err("decoding a run")))
            .transpose()
    }

    /// Runs, newest first (run ids sort by time).
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
            .map_err(db_err("listing runs"))?
            .into_iter()
            .map(|r| r.try_get::<String, _>("record"))
            .collect::<Result<_, _>>()
            .map_err(db_err("listing runs"))?);
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(json_err("decoding a run")))
            .collect()
    }

    /// Marks `interrupted` every `running` run whose owner process on this
    /// host is gone (a crash or `kill -9`). Returns their ids.
    pub async fn mark_orphans_interrupted(&self) -> Result<Vec<String>, StoreError> {
        let host = hostname();
        let rows: Vec<(String, Option<String>)> = on_backend!(
            self,
            "SELECT run_id, owner FROM weft_runs WHERE status = 'running'",
            |q, pool| q
                .fetch_all(pool)
                .await
                .map_err(db_err("finding orphaned runs"))?
                .into_iter()
                .map(|r| Ok((
                    r.try_get::<String, _>("run_id")?,
                    r.try_get::<Option<String>, _>("owner")?
                )))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err("finding orphaned runs"))?
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
            record.end_time.get_or_insert_with(jiff::Timestamp::now);
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
