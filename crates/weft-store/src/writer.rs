//! The store's writer: one thread owning one connection, taking every write
//! of a [`crate::Store`] handle from a channel and committing them in group
//! transactions (see the crate docs for the durability contract).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};
use tokio::sync::oneshot;

use crate::{NodeTiming, RunRecord, RunStatus, SessionRecord, StoreError};

/// How long the writer waits for more deferred writes before committing a
/// group that nobody waits for.
pub(crate) const LINGER: Duration = Duration::from_millis(5);
/// At most this many jobs per group transaction.
const MAX_GROUP: usize = 4096;
/// At most this many running runs' records kept in memory for progress.
const MAX_CACHED: usize = 4096;
/// Rows per multi-row `INSERT` (6 parameters each).
const INSERT_CHUNK: usize = 256;
/// Runs per multi-row `UPDATE` (6 parameters each).
const UPDATE_CHUNK: usize = 256;

/// A bound query parameter (the few types the store uses).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Str(&'a str),
    OptStr(Option<&'a str>),
    I64(i64),
    OptI64(Option<i64>),
}

/// Binds `args` to a query of either backend.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match *a {
                $crate::writer::Arg::Str(s) => q.bind(s),
                $crate::writer::Arg::OptStr(s) => q.bind(s),
                $crate::writer::Arg::I64(i) => q.bind(i),
                $crate::writer::Arg::OptI64(i) => q.bind(i),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

/// SQLite numbers its parameters `?1`; PostgreSQL `$1`. Queries are
/// written once with `$n`.
pub(crate) fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Appends the placeholders of row `row` (0-based) of a multi-row
/// `VALUES` list of `width` columns: `($1, $2, …)` for the first row,
/// `, ($7, $8, …)` for the second, and so on.
fn push_values_row(sql: &mut String, row: usize, width: usize) {
    if row > 0 {
        sql.push_str(", ");
    }
    sql.push('(');
    let first = row * width;
    for col in 1..=width {
        if col > 1 {
            sql.push_str(", ");
        }
        sql.push('$');
        sql.push_str(&(first + col).to_string());
    }
    sql.push(')');
}

/// Error context for a write of one or many runs: `"<verb> run <id>"` for
/// one, `"<verb> <n> runs"` for several.
fn batch_context<'a>(verb: &str, mut run_ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    match run_ids.len() {
        1 => format!("{verb} run {}", run_ids.next().unwrap_or_default()),
        n => format!("{verb} {n} runs"),
    }
}

/// How to open the writer's connection.
#[derive(Clone)]
pub(crate) enum ConnectTo {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

/// A connection of either backend: the writer's own, or one taken from
/// the PostgreSQL read pool for a queue transaction ([`crate::queue`]).
/// The SQLite one is called directly on the writer thread ([`crate::lite`]).
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgConnection),
    PgPooled(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

/// The type of a column [`Conn::fetch_rows`] decodes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Col {
    Str,
    I64,
}

/// A decoded column value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Str(String),
    I64(i64),
}

impl Val {
    /// The text, or empty for anything else.
    pub(crate) fn into_string(self) -> String {
        match self {
            Val::Str(s) => s,
            _ => String::new(),
        }
    }

    /// The text, or `None` for anything else.
    pub(crate) fn into_opt_string(self) -> Option<String> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, or 0 for anything else.
    pub(crate) fn i64(&self) -> i64 {
        match self {
            Val::I64(i) => *i,
            _ => 0,
        }
    }
}

/// Decodes `cols` of a row of either backend.
macro_rules! decode_row {
    ($row:expr, $cols:expr) => {{
        let row = $row;
        let mut out = Vec::with_capacity($cols.len());
        for (i, c) in $cols.iter().enumerate() {
            out.push(match c {
                Col::Str => row.try_get::<Option<String>, _>(i)?.map_or(Val::Null, Val::Str),
                Col::I64 => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::I64),
            });
        }
        out
    }};
}

impl Conn {
    pub(crate) fn is_sqlite(&self) -> bool {
        matches!(self, Conn::Sqlite(_))
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => crate::lite::execute(c, sql, args),
            Conn::Postgres(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                Ok(q.execute(&mut *c).await?.rows_affected())
            }
            Conn::PgPooled(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                Ok(q.execute(&mut **c).await?.rows_affected())
            }
        }
    }

    /// Every row, its columns decoded as `cols` say.
    pub(crate) async fn fetch_rows(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        cols: &[Col],
    ) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => crate::lite::fetch_rows(c, sql, args, cols),
            Conn::Postgres(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                let rows = q.fetch_all(&mut *c).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(decode_row!(r, cols));
                }
                Ok(out)
            }
            Conn::PgPooled(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                let rows = q.fetch_all(&mut **c).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(decode_row!(r, cols));
                }
                Ok(out)
            }
        }
    }

    /// The first column of every row, as text.
    async fn fetch_all_text(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<String>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => crate::lite::fetch_texts(c, sql, args),
            Conn::Postgres(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                q.fetch_all(&mut *c)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect()
            }
            Conn::PgPooled(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                q.fetch_all(&mut **c)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect()
            }
        }
    }

    /// The first column of the first row, as text.
    async fn fetch_text(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<String>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => Ok(crate::lite::fetch_texts(c, sql, args)?.into_iter().next()),
            Conn::Postgres(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                q.fetch_optional(&mut *c)
                    .await?
                    .map(|r| r.try_get::<String, _>(0))
                    .transpose()
            }
            Conn::PgPooled(c) => {
                let q = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), args);
                q.fetch_optional(&mut **c)
                    .await?
                    .map(|r| r.try_get::<String, _>(0))
                    .transpose()
            }
        }
    }

    pub(crate) async fn raw(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(c) => crate::lite::raw(c, sql),
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(&mut *c).await.map(|_| ()),
            Conn::PgPooled(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(|_| ()),
        }
    }

    pub(crate) async fn begin(&mut self) -> Result<(), sqlx::Error> {
        match self {
            // Take the write lock up front: a deferred transaction that
            // reads first could not upgrade under contention.
            Conn::Sqlite(_) => self.raw("BEGIN IMMEDIATE").await,
            Conn::Postgres(_) | Conn::PgPooled(_) => self.raw("BEGIN").await,
        }
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// One write.
pub(crate) enum Job {
    /// New runs, all or none.
    Insert {
        runs: Vec<RunRecord>,
        reply: Reply,
    },
    /// A run's new record; `reply` is `None` for deferred updates.
    Update {
        record: Box<RunRecord>,
        reply: Option<Reply>,
    },
    /// A node finished (deferred).
    Progress {
        run_id: String,
        timing: NodeTiming,
        at: Timestamp,
    },
    CreateSession {
        record: Box<SessionRecord>,
        reply: Reply,
    },
    CloseSession {
        id: String,
        at: Timestamp,
        reply: Reply,
    },
    /// A queue or server-session operation ([`crate::queue`]), applied in
    /// the group's transaction under a savepoint (a refusal undoes only
    /// its own writes); its output is left in `out` before `reply` is
    /// answered, after the commit.
    Queue {
        op: Box<crate::queue::Op>,
        out: crate::queue::OutSlot,
        reply: Reply,
    },
    /// Drop these runs from the cache of running records: their rows were
    /// changed by a queue transaction outside the writer (PostgreSQL).
    /// Applied in order with the other jobs; nobody waits for it.
    Forget {
        run_ids: Vec<String>,
    },
    /// Answered once everything sent before it is committed; with
    /// `take_errors`, answers with the deferred failures since the last
    /// such flush.
    Flush {
        take_errors: bool,
        reply: Reply,
    },
    /// Commit what is queued, answer, stop.
    Shutdown {
        reply: Reply,
    },
}

impl Job {
    /// Whether the job counts as waited for: it is committed without
    /// lingering and is not a pending deferred write ([`Job::Forget`]
    /// writes nothing, so it never makes reads wait).
    fn waited_for(&self) -> bool {
        !matches!(self, Job::Update { reply: None, .. } | Job::Progress { .. })
    }

    /// Whether the job writes nothing.
    fn is_noop(&self) -> bool {
        matches!(
            self,
            Job::Flush { .. } | Job::Shutdown { .. } | Job::Forget { .. }
        )
    }
}

/// The sending side, shared by every clone of a [`crate::Store`]. Dropping
/// the last one commits what is queued and stops the thread.
pub(crate) struct Handle {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Deferred jobs sent and not yet committed (or failed).
    pending: Arc<AtomicUsize>,
    /// Set while the writer waits for more deferred writes: only a job
    /// someone waits for wakes it then (deferred ones wait for the group).
    lingering: Arc<AtomicBool>,
    writer: std::thread::Thread,
    target: String,
}

impl Handle {
    /// Starts the writer thread and opens its connection.
    pub(crate) async fn start(connect: ConnectTo, target: String) -> Result<Handle, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), StoreError>>();
        let pending = Arc::new(AtomicUsize::new(0));
        let lingering = Arc::new(AtomicBool::new(false));
        let thread = {
            let name = target.clone();
            let shared = Shared {
                pending: pending.clone(),
                lingering: lingering.clone(),
            };
            std::thread::Builder::new()
                .name("weft-store-writer".into())
                .spawn(move || writer_thread(connect, name, rx, shared, ready_tx))
                .map_err(|e| StoreError::Open {
                    target: target.clone(),
                    message: format!("cannot start the writer thread: {e}"),
                })?
        };
        let closed = || StoreError::Closed {
            target: target.clone(),
        };
        ready_rx.await.map_err(|_| closed())??;
        Ok(Handle {
            tx: Mutex::new(Some(tx)),
            writer: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            pending,
            lingering,
            target,
        })
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            target: self.target.clone(),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let deferred = !job.waited_for();
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_ref().ok_or_else(|| self.closed())?;
        if deferred {
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        tx.send(job).map_err(|_| {
            if deferred {
                self.pending.fetch_sub(1, Ordering::SeqCst);
            }
            self.closed()
        })?;
        if !deferred && self.lingering.load(Ordering::SeqCst) {
            self.writer.unpark();
        }
        Ok(())
    }

    /// Sends a job and waits for its answer.
    pub(crate) async fn call(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(job(reply))?;
        answer.await.map_err(|_| self.closed())?
    }

    /// Sends a job nobody waits for.
    pub(crate) fn post(&self, job: Job) -> Result<(), StoreError> {
        self.send(job)
    }

    /// Whether deferred writes are queued (reads then wait for them).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Commits what is queued, stops the thread and waits for it; later
    /// writes fail with [`StoreError::Closed`]. Returns the deferred
    /// failures not yet reported.
    pub(crate) async fn shutdown(&self) -> Result<(), StoreError> {
        let result = match self.call(|reply| Job::Shutdown { reply }).await {
            Err(StoreError::Closed { .. }) => Ok(()),
            other => other,
        };
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.writer.unpark();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        result
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Closing the channel makes the writer commit what is queued and
        // return; wait for it so nothing acknowledged is lost on exit.
        self.tx.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        self.writer.unpark();
        if let Some(t) = self.thread.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// State shared by the handle and the writer thread.
struct Shared {
    pending: Arc<AtomicUsize>,
    lingering: Arc<AtomicBool>,
}

/// Moves what is queued into `group`, noting whether someone waits for a
/// job and whether the writer must stop.
fn drain(rx: &mpsc::Receiver<Job>, group: &mut Vec<Job>, waited: &mut bool, stop: &mut bool) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => {
                *stop |= matches!(job, Job::Shutdown { .. });
                *waited |= job.waited_for();
                group.push(job);
            }
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                *stop = true;
                return;
            }
        }
    }
}

fn writer_thread(
    connect: ConnectTo,
    target: String,
    rx: mpsc::Receiver<Job>,
    shared: Shared,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Open {
                target,
                message: format!("cannot start the writer's runtime: {e}"),
            }));
            return;
        }
    };
    let conn = runtime.block_on(async {
        match &connect {
            ConnectTo::Sqlite(o) => crate::lite::open(o.get_filename()).map(Conn::Sqlite),
            ConnectTo::Postgres(o) => PgConnection::connect_with(o).await.map(Conn::Postgres),
        }
    });
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Unreachable {
                target,
                message: format!("the writer cannot connect: {e}"),
            }));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut writer = Writer {
        conn,
        target,
        cache: HashMap::new(),
        errors: Vec::new(),
        pending: shared.pending,
    };
    loop {
        let Ok(first) = rx.recv() else {
            break; // every handle is gone
        };
        let mut stop = matches!(first, Job::Shutdown { .. });
        let mut waited = first.waited_for();
        let mut group = vec![first];
        drain(&rx, &mut group, &mut waited, &mut stop);
        if !waited && !stop && group.len() < MAX_GROUP {
            // Nobody waits: linger a little to commit more at once. Senders
            // of deferred writes do not wake the thread meanwhile (a wake-up
            // per write would cost more than the write); a waited-for job
            // or a closed channel does.
            let deadline = Instant::now() + LINGER;
            shared.lingering.store(true, Ordering::SeqCst);
            loop {
                drain(&rx, &mut group, &mut waited, &mut stop);
                let now = Instant::now();
                if waited || stop || group.len() >= MAX_GROUP || now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            shared.lingering.store(false, Ordering::SeqCst);
            drain(&rx, &mut group, &mut waited, &mut stop);
        }
        runtime.block_on(writer.apply(group));
        if stop {
            break;
        }
    }
    let Writer { conn, .. } = writer;
    runtime.block_on(async {
        match conn {
            Conn::Sqlite(c) => {
                let _ = c.close();
            }
            Conn::Postgres(c) => {
                let _ = c.close().await;
            }
            Conn::PgPooled(c) => drop(c),
        }
    });
}

/// Writes of one group to one run, coalesced: the last record, the
/// statuses the stored row may have for the chain to be valid, and who
/// waits for the outcome.
struct PendingRun {
    record: RunRecord,
    /// Stored statuses that allow the first write of the chain.
    allowed: Vec<RunStatus>,
    /// The first status requested (for the error when the row refuses).
    first: Option<RunStatus>,
    waiters: Vec<Reply>,
    /// Whether an update (not only progress) is in the chain.
    updated: bool,
}

struct Writer {
    conn: Conn,
    target: String,
    /// Records of running runs as last committed by this writer.
    cache: HashMap<String, RunRecord>,
    /// Failures of deferred writes since the last flush that took them.
    errors: Vec<StoreError>,
    pending: Arc<AtomicUsize>,
}

impl Writer {
    fn db_err(&self, e: sqlx::Error, context: &str) -> StoreError {
        crate::store::classify(&self.target, matches!(self.conn, Conn::Sqlite(_)), e, context)
    }

    /// The text column `sql` selects for the row whose key (`$1`) is `key`,
    /// if there is one; failures carry `context`.
    async fn text_for(&mut self, sql: &str, key: &str, context: &str) -> Result<Option<String>, StoreError> {
        let found = self.conn.fetch_text(sql, &[Arg::Str(key)]).await;
        found.map_err(|e| self.db_err(e, context))
    }

    fn json_err(&self, e: serde_json::Error, context: &str) -> StoreError {
        StoreError::Malformed {
            target: self.target.clone(),
            context: context.to_string(),
            source: Arc::new(e),
        }
    }

    /// Applies one group in one transaction. A logical refusal
    /// (duplicate, forbidden transition, unknown id) fails only its job; a
    /// database failure fails the whole group.
    async fn apply(&mut self, group: Vec<Job>) {
        let deferred = group.iter().filter(|j| !j.waited_for()).count();
        let mut done: Vec<(Reply, Result<(), StoreError>)> = Vec::new();
        let mut flushes: Vec<(bool, Reply)> = Vec::new();
        let mut failed_deferred: Vec<StoreError> = Vec::new();
        let outcome = self
            .apply_in_transaction(group, &mut done, &mut flushes, &mut failed_deferred)
            .await;
        match outcome {
            Ok(()) => {
                for (reply, result) in done {
                    let _ = reply.send(result);
                }
                self.errors.extend(failed_deferred);
            }
            Err((e, waiters)) => {
                self.cache.clear();
                for (reply, _) in done {
                    let _ = reply.send(Err(e.clone()));
                }
                for reply in waiters {
                    let _ = reply.send(Err(e.clone()));
                }
                if deferred > 0 {
                    self.errors.push(e);
                }
            }
        }
        self.pending.fetch_sub(deferred, Ordering::SeqCst);
        for (take, reply) in flushes {
            let errors = if take {
                std::mem::take(&mut self.errors)
            } else {
                Vec::new()
            };
            let failed = errors.len();
            let result = match errors.into_iter().next() {
                Some(first) => Err(StoreError::Deferred {
                    target: self.target.clone(),
                    failed,
                    first: Box::new(first),
                }),
                None => Ok(()),
            };
            let _ = reply.send(result);
        }
    }

    /// On a database failure returns it with the waiters not yet in `done`.
    async fn apply_in_transaction(
        &mut self,
        group: Vec<Job>,
        done: &mut Vec<(Reply, Result<(), StoreError>)>,
        flushes: &mut Vec<(bool, Reply)>,
        failed_deferred: &mut Vec<StoreError>,
    ) -> Result<(), (StoreError, Vec<Reply>)> {
        let mut runs: Vec<(String, PendingRun)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        if group.iter().all(Job::is_noop) {
            for job in group {
                match job {
                    Job::Flush { take_errors, reply } => flushes.push((take_errors, reply)),
                    Job::Shutdown { reply } => flushes.push((true, reply)),
                    Job::Forget { run_ids } => {
                        for id in run_ids {
                            self.cache.remove(&id);
                        }
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        // One write that is one statement needs no transaction (saves two
        // round trips for callers that wait).
        let writes: Vec<&Job> = group.iter().filter(|j| !j.is_noop()).collect();
        let autocommit = matches!(
            writes.as_slice(),
            [Job::Update { .. } | Job::CreateSession { .. }]
        ) || matches!(writes.as_slice(), [Job::Insert { runs, .. }] if runs.len() <= 1);
        if !autocommit && let Err(e) = self.conn.begin().await {
            let e = self.db_err(e, "starting a write transaction");
            return Err((e, take_waiters(group)));
        }
        let mut jobs = group.into_iter().peekable();
        let result: Result<(), StoreError> = async {
            while let Some(job) = jobs.next() {
                match job {
                    Job::Insert { runs: new, reply } => {
                        let mut written = Ok(());
                        if new.iter().any(|r| index.contains_key(&r.run_id)) {
                            written = self
                                .write_runs(&mut runs, &mut index, done, failed_deferred)
                                .await;
                        }
                        let result = match written {
                            Ok(()) => self.insert(&new).await,
                            Err(e) => Err(e),
                        };
                        // On a database failure the reply joins `done`,
                        // whose waiters all get the failure.
                        let result = match result {
                            Ok(r) => r,
                            Err(e) => {
                                done.push((reply, Err(e.clone())));
                                return Err(e);
                            }
                        };
                        if result.is_ok() {
                            for r in new {
                                if r.status == RunStatus::Running {
                                    self.cache_put(r);
                                }
                            }
                        }
                        done.push((reply, result));
                    }
                    Job::Update { record, reply } => {
                        let at = index.get(&record.run_id).copied();
                        match at {
                            Some(i) => {
                                let p = &mut runs[i].1;
                                match RunStatus::check_transition(
                                    &record.run_id,
                                    p.record.status,
                                    record.status,
                                ) {
                                    Ok(()) => {
                                        p.record = *record;
                                        p.updated = true;
                                        p.first.get_or_insert(p.record.status);
                                        p.waiters.extend(reply);
                                    }
                                    Err(e) => match reply {
                                        Some(reply) => done.push((reply, Err(e.into()))),
                                        None => failed_deferred.push(e.into()),
                                    },
                                }
                            }
                            None => {
                                index.insert(record.run_id.clone(), runs.len());
                                runs.push((
                                    record.run_id.clone(),
                                    PendingRun {
                                        allowed: RunStatus::sources(record.status),
                                        first: Some(record.status),
                                        record: *record,
                                        waiters: reply.into_iter().collect(),
                                        updated: true,
                                    },
                                ));
                            }
                        }
                    }
                    Job::Progress { run_id, timing, at } => {
                        if let Some(&i) = index.get(&run_id) {
                            let p = &mut runs[i].1;
                            if p.record.status == RunStatus::Running {
                                p.record.node_timings.push(timing);
                                p.record.updated_at = Some(at);
                            }
                            continue;
                        }
                        let Some(mut record) = self.running_record(&run_id).await? else {
                            continue; // not running (any more): nothing to add
                        };
                        record.node_timings.push(timing);
                        record.updated_at = Some(at);
                        index.insert(run_id.clone(), runs.len());
                        runs.push((
                            run_id,
                            PendingRun {
                                record,
                                allowed: vec![RunStatus::Running],
                                first: None,
                                waiters: Vec::new(),
                                updated: false,
                            },
                        ));
                    }
                    Job::CreateSession { record, reply } => {
                        let result = self.create_session(&record).await;
                        let failed = result.as_ref().err().cloned();
                        done.push((reply, result.unwrap_or_else(Err)));
                        if let Some(e) = failed {
                            return Err(e);
                        }
                    }
                    Job::CloseSession { id, at, reply } => {
                        let result = self.close_session(&id, at).await;
                        let failed = result.as_ref().err().cloned();
                        done.push((reply, result.unwrap_or_else(Err)));
                        if let Some(e) = failed {
                            return Err(e);
                        }
                    }
                    Job::Queue { op, out, reply } if op.is_enqueue() && self.conn.is_sqlite() => {
                        // Consecutive enqueues of the group (concurrent
                        // dispatches) in a few statements.
                        if let Err(e) = self
                            .write_runs(&mut runs, &mut index, done, failed_deferred)
                            .await
                        {
                            done.push((reply, Err(e.clone())));
                            return Err(e);
                        }
                        let mut batch = vec![(op, out, reply)];
                        while let Some(job) =
                            jobs.next_if(|j| matches!(j, Job::Queue { op, .. } if op.is_enqueue()))
                        {
                            if let Job::Queue { op, out, reply } = job {
                                batch.push((op, out, reply));
                            }
                        }
                        let results = {
                            let ops: Vec<&crate::queue::Op> = batch.iter().map(|(op, ..)| &**op).collect();
                            crate::queue::enqueue_batch(&mut self.conn, &self.target, &ops).await
                        };
                        match results {
                            Ok(results) => {
                                for ((_, out, reply), result) in batch.into_iter().zip(results) {
                                    match result {
                                        Ok(output) => {
                                            *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(output);
                                            done.push((reply, Ok(())));
                                        }
                                        Err(refused) => done.push((reply, Err(refused))),
                                    }
                                }
                            }
                            Err(e) => {
                                for (_, _, reply) in batch {
                                    done.push((reply, Err(e.clone())));
                                }
                                return Err(e);
                            }
                        }
                    }
                    Job::Queue { op, out, reply } => {
                        // Earlier updates of the group first: the
                        // operation reads and writes the same rows.
                        if let Err(e) = self
                            .write_runs(&mut runs, &mut index, done, failed_deferred)
                            .await
                        {
                            done.push((reply, Err(e.clone())));
                            return Err(e);
                        }
                        let result =
                            crate::queue::apply_in_savepoint(&mut self.conn, &self.target, &op).await;
                        match result {
                            Ok(Ok(output)) => {
                                for run_id in output.touched() {
                                    self.cache.remove(run_id);
                                }
                                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(output);
                                done.push((reply, Ok(())));
                            }
                            Ok(Err(refused)) => done.push((reply, Err(refused))),
                            Err(e) => {
                                done.push((reply, Err(e.clone())));
                                return Err(e);
                            }
                        }
                    }
                    Job::Forget { run_ids } => {
                        for id in run_ids {
                            self.cache.remove(&id);
                            // A pending chain of this run was queued before
                            // the queue transaction: it stays as it is.
                        }
                    }
                    Job::Flush { take_errors, reply } => flushes.push((take_errors, reply)),
                    Job::Shutdown { reply } => flushes.push((true, reply)),
                }
            }
            self.write_runs(&mut runs, &mut index, done, failed_deferred)
                .await?;
            if autocommit {
                return Ok(());
            }
            self.conn
                .raw("COMMIT")
                .await
                .map_err(|e| self.db_err(e, "committing writes"))
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                if !autocommit {
                    let _ = self.conn.raw("ROLLBACK").await;
                }
                let mut waiters = take_waiters(jobs.collect());
                for (_, p) in runs {
                    waiters.extend(p.waiters);
                }
                // Everything already answered is undone too.
                waiters.extend(done.drain(..).map(|(r, _)| r));
                Err((e, waiters))
            }
        }
    }

    fn cache_put(&mut self, r: RunRecord) {
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&r.run_id) {
            self.cache.clear();
        }
        self.cache.insert(r.run_id.clone(), r);
    }

    /// The record of a run that is running, from the cache or the row.
    async fn running_record(&mut self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        if let Some(r) = self.cache.get(run_id) {
            return Ok(Some(r.clone()));
        }
        let ctx = format!("reading run {run_id}");
        let text = self
            .text_for(
                "SELECT record FROM weft_runs WHERE run_id = $1 AND status = 'running'",
                run_id,
                &ctx,
            )
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| self.json_err(e, &ctx)))
            .transpose()
    }

    /// Writes the coalesced run updates of the group so far.
    async fn write_runs(
        &mut self,
        runs: &mut Vec<(String, PendingRun)>,
        index: &mut HashMap<String, usize>,
        done: &mut Vec<(Reply, Result<(), StoreError>)>,
        failed_deferred: &mut Vec<StoreError>,
    ) -> Result<(), StoreError> {
        let mut refused: HashMap<String, StoreError> = HashMap::new();
        // On failure the runs stay in `runs`: the caller answers their
        // waiters with the error.
        self.check_runs(runs, &mut refused, failed_deferred).await?;
        index.clear();
        // Answer the waiters.
        for (run_id, p) in std::mem::take(runs) {
            if p.waiters.is_empty() {
                continue;
            }
            let result = match refused.remove(&run_id) {
                Some(e) => Err(e),
                None => Ok(()),
            };
            // Every write of a chain depended on its first.
            done.extend(p.waiters.into_iter().map(|w| (w, result.clone())));
        }
        Ok(())
    }

    /// Writes `runs`, noting the refused ones (by waiters) in `refused`
    /// and the refused deferred ones in `failed_deferred`.
    async fn check_runs(
        &mut self,
        runs: &[(String, PendingRun)],
        refused: &mut HashMap<String, StoreError>,
        failed_deferred: &mut Vec<StoreError>,
    ) -> Result<(), StoreError> {
        for chunk in runs.chunks(UPDATE_CHUNK) {
            let written = self.write_chunk(chunk).await?;
            for (run_id, p) in chunk {
                if written.contains(run_id.as_str()) {
                    if p.record.status == RunStatus::Running {
                        self.cache_put(p.record.clone());
                    } else {
                        self.cache.remove(run_id);
                    }
                    continue;
                }
                self.cache.remove(run_id);
                if !p.updated {
                    continue; // progress of a run that stopped meanwhile
                }
                let e = self.refusal(run_id, p).await?;
                if p.waiters.is_empty() {
                    failed_deferred.push(e);
                } else {
                    refused.insert(run_id.clone(), e);
                }
            }
        }
        Ok(())
    }

    /// Why the row of `run_id` refused the chain `p`.
    async fn refusal(&mut self, run_id: &str, p: &PendingRun) -> Result<StoreError, StoreError> {
        let ctx = format!("updating run {run_id}");
        let stored = self
            .text_for("SELECT status FROM weft_runs WHERE run_id = $1", run_id, &ctx)
            .await?;
        let to = p.first.unwrap_or(p.record.status);
        let e = match stored {
            None => StoreError::RunNotFound {
                run_id: run_id.to_string(),
                target: self.target.clone(),
            },
            Some(from) => StoreError::InvalidTransition {
                run_id: run_id.to_string(),
                from,
                to: to.to_string(),
            },
        };
        Ok(e)
    }

    /// Many coalesced updates in one statement; returns the run ids whose
    /// row accepted theirs (stored status among the chain's `allowed`).
    async fn write_chunk(&mut self, chunk: &[(String, PendingRun)]) -> Result<HashSet<String>, StoreError> {
        let ctx = batch_context("updating", chunk.iter().map(|(id, _)| id.as_str()));
        let mut encoded = Vec::with_capacity(chunk.len());
        let mut allowed = Vec::with_capacity(chunk.len());
        for (_, p) in chunk {
            encoded.push(serde_json::to_string(&p.record).map_err(|e| self.json_err(e, &ctx))?);
            // `,queued,running,`: matched with LIKE on both backends.
            let mut list = String::from(",");
            for st in &p.allowed {
                list.push_str(st.as_str());
                list.push(',');
            }
            allowed.push(list);
        }
        let mut sql = String::from("WITH v (run_id, status, owner, start_us, record, allowed) AS (VALUES ");
        let mut args = Vec::with_capacity(chunk.len() * 6);
        for (i, (run_id, p)) in chunk.iter().enumerate() {
            push_values_row(&mut sql, i, 6);
            args.extend([
                Arg::Str(run_id),
                Arg::Str(p.record.status.as_str()),
                Arg::OptStr(p.record.owner.as_deref()),
                Arg::OptI64(p.record.start_time.map(|t| t.as_microsecond())),
                Arg::Str(&encoded[i]),
                Arg::Str(&allowed[i]),
            ]);
        }
        sql.push_str(
            ") UPDATE weft_runs SET status = v.status, owner = v.owner, start_us = v.start_us, record = v.record
             FROM v WHERE weft_runs.run_id = v.run_id AND v.allowed LIKE '%,' || weft_runs.status || ',%'
             RETURNING weft_runs.run_id",
        );
        let written = self
            .conn
            .fetch_all_text(&sql, &args)
            .await
            .map_err(|e| self.db_err(e, &ctx))?;
        Ok(written.into_iter().collect())
    }

    /// New rows, all or none: `Ok(Err(DuplicateRun))` when an id exists.
    async fn insert(&mut self, runs: &[RunRecord]) -> Result<Result<(), StoreError>, StoreError> {
        if runs.is_empty() {
            return Ok(Ok(()));
        }
        let duplicate = |run_id: &str| StoreError::DuplicateRun {
            run_id: run_id.to_string(),
            target: self.target.clone(),
        };
        let mut seen = HashSet::new();
        if let Some(r) = runs.iter().find(|r| !seen.insert(r.run_id.as_str())) {
            return Ok(Err(duplicate(&r.run_id)));
        }
        let encoded = runs
            .iter()
            .map(|r| {
                serde_json::to_string(r).map_err(|e| self.json_err(e, &format!("encoding run {}", r.run_id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = batch_context("recording", runs.iter().map(|r| r.run_id.as_str()));
        let batch = runs.len() > 1;
        if batch {
            self.conn
                .raw("SAVEPOINT weft_insert")
                .await
                .map_err(|e| self.db_err(e, &ctx))?;
        }
        let mut inserted = 0u64;
        for (chunk, records) in runs.chunks(INSERT_CHUNK).zip(encoded.chunks(INSERT_CHUNK)) {
            let mut sql = String::from(
                "INSERT INTO weft_runs (run_id, session_id, status, owner, start_us, record) VALUES ",
            );
            let mut args = Vec::with_capacity(chunk.len() * 6);
            for (i, (r, record)) in chunk.iter().zip(records).enumerate() {
                push_values_row(&mut sql, i, 6);
                args.extend([
                    Arg::Str(&r.run_id),
                    Arg::Str(&r.session_id),
                    Arg::Str(r.status.as_str()),
                    Arg::OptStr(r.owner.as_deref()),
                    Arg::OptI64(r.start_time.map(|t| t.as_microsecond())),
                    Arg::Str(record),
                ]);
            }
            sql.push_str(" ON CONFLICT (run_id) DO NOTHING");
            inserted += self
                .conn
                .execute(&sql, &args)
                .await
                .map_err(|e| self.db_err(e, &ctx))?;
        }
        if inserted == runs.len() as u64 {
            if batch {
                self.conn
                    .raw("RELEASE SAVEPOINT weft_insert")
                    .await
                    .map_err(|e| self.db_err(e, &ctx))?;
            }
            return Ok(Ok(()));
        }
        if batch {
            self.conn
                .raw("ROLLBACK TO SAVEPOINT weft_insert")
                .await
                .map_err(|e| self.db_err(e, &ctx))?;
            self.conn
                .raw("RELEASE SAVEPOINT weft_insert")
                .await
                .map_err(|e| self.db_err(e, &ctx))?;
        }
        // Name the first id that is recorded already.
        for r in runs {
            let exists = self
                .conn
                .fetch_text(
                    "SELECT run_id FROM weft_runs WHERE run_id = $1",
                    &[Arg::Str(&r.run_id)],
                )
                .await
                .map_err(|e| self.db_err(e, &ctx))?;
            if exists.is_some() {
                return Ok(Err(duplicate(&r.run_id)));
            }
        }
        Ok(Err(duplicate(&runs[0].run_id)))
    }

    async fn create_session(&mut self, s: &SessionRecord) -> Result<Result<(), StoreError>, StoreError> {
        let ctx = format!("recording session {}", s.session_id);
        let record = serde_json::to_string(s).map_err(|e| self.json_err(e, &ctx))?;
        let affected = self
            .conn
            .execute(
                "INSERT INTO weft_sessions (session_id, created_us, record) VALUES ($1, $2, $3)
                 ON CONFLICT (session_id) DO NOTHING",
                &[
                    Arg::Str(&s.session_id),
                    Arg::I64(s.created_at.as_microsecond()),
                    Arg::Str(&record),
                ],
            )
            .await
            .map_err(|e| self.db_err(e, &ctx))?;
        Ok(if affected == 1 {
            Ok(())
        } else {
            Err(StoreError::DuplicateSession {
                session_id: s.session_id.clone(),
                target: self.target.clone(),
            })
        })
    }

    async fn close_session(&mut self, id: &str, at: Timestamp) -> Result<Result<(), StoreError>, StoreError> {
        let ctx = format!("closing session {id}");
        let text = self
            .text_for("SELECT record FROM weft_sessions WHERE session_id = $1", id, &ctx)
            .await?;
        let Some(text) = text else {
            return Ok(Err(StoreError::SessionNotFound {
                session_id: id.to_string(),
                target: self.target.clone(),
            }));
        };
        let mut s: SessionRecord = serde_json::from_str(&text).map_err(|e| self.json_err(e, &ctx))?;
        s.closed_at = Some(at);
        let record = serde_json::to_string(&s).map_err(|e| self.json_err(e, &ctx))?;
        self.conn
            .execute(
                "UPDATE weft_sessions SET record = $1 WHERE session_id = $2",
                &[Arg::Str(&record), Arg::Str(id)],
            )
            .await
            .map_err(|e| self.db_err(e, &ctx))?;
        Ok(Ok(()))
    }
}

/// The reply channels of jobs that were not applied.
fn take_waiters(jobs: Vec<Job>) -> Vec<Reply> {
    jobs.into_iter()
        .filter_map(|j| match j {
            Job::Insert { reply, .. }
            | Job::CreateSession { reply, .. }
            | Job::CloseSession { reply, .. }
            | Job::Queue { reply, .. }
            | Job::Flush { reply, .. }
            | Job::Shutdown { reply } => Some(reply),
            Job::Update { reply, .. } => reply,
            Job::Progress { .. } | Job::Forget { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_number_their_placeholders_on() {
        let mut sql = String::from("VALUES ");
        for row in 0..2 {
            push_values_row(&mut sql, row, 6);
        }
        assert_eq!(
            sql,
            "VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"
        );
    }

    #[test]
    fn batch_context_names_one_run_or_counts_many() {
        assert_eq!(batch_context("updating", ["r1"].into_iter()), "updating run r1");
        assert_eq!(
            batch_context("recording", ["a", "b", "c"].into_iter()),
            "recording 3 runs"
        );
    }
}
