//! The durable run queue of `weft serve` and its sessions.
//!
//! Three tables (schema version 2):
//!
//! * `weft_server_sessions`: one row per server session, with its key and
//!   whether it is live; a UNIQUE partial index on `session_key WHERE live
//!   = 1` makes reuse-or-reserve by key atomic across processes.
//! * `weft_queue`: one row per dispatched run: `queued` → `leased` (to an
//!   owner until a time) → `done`, FIFO within a session by `seq`. A lease
//!   that expires puts the run back to `queued` (same `seq`) while it has
//!   attempts left.
//! * `weft_idempotency`: the run ids a dispatch with an `Idempotency-Key`
//!   created, per session.
//!
//! Every operation that changes rows is one transaction that also keeps the
//! run rows (`weft_runs`) in step: a run is `queued` while its queue row is
//! queued, `running` while leased, and terminal once done. On SQLite the
//! operations go through the store's writer (group commits: 64 concurrent
//! [`Store::enqueue`] calls share a few commits); on PostgreSQL each is its
//! own transaction on a pooled connection, with row locks (`FOR UPDATE
//! SKIP LOCKED`), a per-session advisory lock that keeps the concurrency
//! count of [`Store::claim`] exact across processes, and an advisory lock
//! and a sequence that numbers the queue rows (`seq`; SQLite: the last
//! `seq` plus one, read under the writer's lock).
//! Row locks are always taken queue row first, run row second.
//!
//! A worker that lost its lease (see [`Store::renew_leases`]) must stop
//! writing its run's row: [`Store::update_run`] and
//! [`Store::update_progress`] check the status, not the owner.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::writer::{Arg, Col, Conn, Val};
use crate::{RunErrorRecord, RunRecord, RunStatus, Store, StoreError};

/// Session states the store treats as not live (a key held by such a
/// session is free again).
pub const NOT_LIVE_STATES: [&str; 4] = ["closed", "expired", "aborted", "failed"];

/// A session of `weft serve` (not the same table as
/// [`crate::SessionRecord`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSessionRecord {
    /// Session id.
    pub session_id: String,
    /// The reuse key: at most one live session holds a key.
    pub key: Option<String>,
    /// The project folder.
    pub project_path: String,
    /// The configuration environment.
    pub env: Option<String>,
    /// The server's state machine name; `closed`, `expired`, `aborted` and
    /// `failed` are not live ([`NOT_LIVE_STATES`]).
    pub state: String,
    /// Why it ended, e.g. `{"code": "idle_timeout"}`.
    pub reason: Option<serde_json::Value>,
    /// Idle time after which it expires, in seconds.
    pub idle_ttl_s: u64,
    /// At most this many of its runs run at once.
    pub max_concurrency: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// Server-owned JSON (pending input and the like).
    pub extra: serde_json::Value,
}

impl ServerSessionRecord {
    /// Whether the store counts it as live (its key taken).
    pub fn is_live(&self) -> bool {
        !NOT_LIVE_STATES.contains(&self.state.as_str())
    }
}

/// One run to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueItem {
    /// Its run row; recorded with status `queued` and the session of the
    /// [`Store::enqueue`] call whatever these fields say.
    pub run: RunRecord,
    /// The run spec the worker gets back from [`Store::claim`].
    pub spec: serde_json::Value,
    /// Claims allowed before an expired lease makes it `interrupted` for
    /// good (at least 1).
    pub max_attempts: u32,
}

/// What [`Store::enqueue`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The run ids, in the order of the items (of the first call when
    /// replayed).
    pub run_ids: Vec<String>,
    /// The idempotency key was seen before: nothing was written.
    pub replayed: bool,
}

/// A run leased by [`Store::claim`].
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The run.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// Its spec, as enqueued.
    pub spec: serde_json::Value,
    /// This claim's attempt number (1 for the first).
    pub attempt: u32,
    /// When the run was enqueued (for dispatch latency).
    pub enqueued_at: Timestamp,
}

/// A lease [`Store::expire_leases`] found expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The run.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// Put back to `queued` (attempts left); otherwise it is `interrupted`
    /// for good.
    pub requeued: bool,
}

/// Queue depth of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Runs waiting.
    pub queued: u64,
    /// Runs leased (running).
    pub leased: u64,
    /// Runs paused for input (`input_required`).
    pub waiting: u64,
}

/// A queue operation, applied in one transaction.
pub(crate) enum Op {
    CreateOrReuse(Box<ServerSessionRecord>),
    UpdateSession(Box<ServerSessionRecord>),
    Enqueue {
        session_id: String,
        items: Vec<(RunRecord, String, u32)>,
        key: Option<String>,
        now: Timestamp,
    },
    Claim {
        session_id: String,
        owner: String,
        max: u32,
        max_concurrency: u32,
        lease: Duration,
        now: Timestamp,
    },
    Renew {
        owner: String,
        run_ids: Vec<String>,
        lease: Duration,
        now: Timestamp,
    },
    Complete {
        owner: String,
        record: Box<RunRecord>,
        now: Timestamp,
    },
    CancelQueued {
        run_id: String,
        now: Timestamp,
    },
    ProvideInput {
        run_id: String,
        spec: String,
        now: Timestamp,
    },
    CancelSession {
        session_id: String,
        now: Timestamp,
    },
    /// Leases expired at `now`, or (with `owner`) every lease of that
    /// owner.
    Expire {
        now: Timestamp,
        wall: Timestamp,
        owner: Option<String>,
    },
    Release {
        owner: String,
        now: Timestamp,
    },
}

impl Op {
    /// Whether it is an enqueue (the writer batches consecutive ones).
    pub(crate) fn is_enqueue(&self) -> bool {
        matches!(self, Op::Enqueue { .. })
    }
}

/// What an [`Op`] produced.
pub(crate) enum Output {
    Session(Box<ServerSessionRecord>, bool),
    Unit,
    Enqueued(Enqueued),
    Claimed(Vec<Claimed>),
    /// Lost leases (renew) or cancelled runs.
    Ids(Vec<String>, Vec<String>),
    Done(bool, Vec<String>),
    Expired(Vec<ExpiredLease>),
    Count(u64, Vec<String>),
}

impl Output {
    /// Run ids whose run row changed (the writer drops them from its
    /// cache of running records).
    pub(crate) fn touched(&self) -> Vec<&str> {
        match self {
            Output::Ids(_, touched) | Output::Done(_, touched) | Output::Count(_, touched) => {
                touched.iter().map(String::as_str).collect()
            }
            Output::Claimed(c) => c.iter().map(|c| c.run_id.as_str()).collect(),
            Output::Expired(e) => e.iter().map(|e| e.run_id.as_str()).collect(),
            Output::Session(..) | Output::Unit | Output::Enqueued(_) => vec![],
        }
    }
}

/// Where the writer leaves an operation's output.
pub(crate) type OutSlot = Arc<Mutex<Option<Output>>>;

/// Outer error: the database failed (the transaction is lost); inner: the
/// operation was refused (nothing it wrote is kept).
type Outcome = Result<Result<Output, StoreError>, StoreError>;

/// Applies `op` inside the writer's group transaction. Only an enqueue or
/// a completion can be refused after writing; they run under a savepoint.
pub(crate) async fn apply_in_savepoint(conn: &mut Conn, target: &str, op: &Op) -> Outcome {
    let mut tx = Tx { conn, target };
    if !matches!(op, Op::Enqueue { .. } | Op::Complete { .. }) {
        return tx.apply(op).await;
    }
    let ctx = "a queue savepoint";
    tx.raw("SAVEPOINT weft_queue", ctx).await?;
    let result = tx.apply(op).await?;
    if result.is_err() {
        tx.raw("ROLLBACK TO SAVEPOINT weft_queue", ctx).await?;
    }
    tx.raw("RELEASE SAVEPOINT weft_queue", ctx).await?;
    Ok(result)
}

/// Applies `op` in its own transaction (PostgreSQL, pooled connection).
pub(crate) async fn apply_in_transaction(conn: &mut Conn, target: &str, op: &Op) -> Outcome {
    let mut tx = Tx { conn, target };
    tx.conn
        .begin()
        .await
        .map_err(|e| tx.db_err(e, "starting a queue transaction"))?;
    let result = tx.apply(op).await;
    match result {
        Ok(Ok(out)) => {
            tx.raw("COMMIT", "committing a queue transaction").await?;
            Ok(Ok(out))
        }
        Ok(Err(refused)) => {
            tx.raw("ROLLBACK", "rolling back a queue transaction").await?;
            Ok(Err(refused))
        }
        Err(e) => {
            let _ = tx.conn.raw("ROLLBACK").await;
            Err(e)
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration_ms(start: Option<Timestamp>, end: Timestamp) -> Option<f64> {
    start.map(|s| (end.as_microsecond() - s.as_microsecond()).max(0) as f64 / 1000.0)
}

/// Rows per multi-row insert.
const CHUNK: usize = 256;

/// A run row to insert by an enqueue.
struct NewRun<'a> {
    session_id: &'a str,
    record: RunRecord,
    /// `record` as JSON.
    text: String,
    spec: &'a str,
    max_attempts: i64,
}

/// Appends row `row` of a multi-row `VALUES` list: `pattern` with its
/// `width` `${}` placeholders numbered on from the rows before.
fn push_row(sql: &mut String, row: usize, width: usize, pattern: &str) {
    if row > 0 {
        sql.push_str(", ");
    }
    let mut n = row * width;
    let mut parts = pattern.split("${}");
    if let Some(first) = parts.next() {
        sql.push_str(first);
    }
    for part in parts {
        n += 1;
        sql.push('$');
        sql.push_str(&n.to_string());
        sql.push_str(part);
    }
}

/// An enqueue's session, items (record, encoded spec, max attempts), key
/// and time.
type EnqueueArgs<'a> = (
    &'a str,
    &'a [(RunRecord, String, u32)],
    Option<&'a str>,
    Timestamp,
);

/// Many enqueues inside the writer's group transaction (SQLite, whose
/// write lock the writer holds, so what it reads stays true until the
/// commit): each is decided in order as [`Store::enqueue`] would
/// (replayed, duplicate or accepted), then every accepted one is written
/// with a few multi-row statements. An outer error fails the group.
pub(crate) async fn enqueue_batch(
    conn: &mut Conn,
    target: &str,
    ops: &[&Op],
) -> Result<Vec<Result<Output, StoreError>>, StoreError> {
    let mut tx = Tx { conn, target };
    let ctx = format!("enqueuing {} dispatches", ops.len());
    let parts: Vec<EnqueueArgs<'_>> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Enqueue {
                session_id,
                items,
                key,
                now,
            } => Some((session_id.as_str(), items.as_slice(), key.as_deref(), *now)),
            _ => None,
        })
        .collect();
    if parts.len() != ops.len() {
        // Only enqueues are batched; anything else is applied one by one.
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(tx.apply(op).await?);
        }
        return Ok(out);
    }
    // What is stored already (run ids, keys) and the last place in line:
    // one UNION ALL (per ~30,000 parameters).
    let keyed: Vec<(&str, &str)> = parts
        .iter()
        .filter_map(|(s, _, k, _)| k.map(|k| (*s, k)))
        .collect();
    let all_ids: Vec<&str> = parts
        .iter()
        .flat_map(|(_, items, ..)| items.iter().map(|(r, ..)| r.run_id.as_str()))
        .collect();
    let mut lookup = Packer::new(" UNION ALL ");
    lookup.part(
        "SELECT 2 AS kind, NULL AS a, NULL AS b, NULL AS c, COALESCE(MAX(seq), 0) AS n FROM weft_queue",
        vec![],
    );
    for chunk in all_ids.chunks(500) {
        let marks = vec!["${}"; chunk.len()].join(", ");
        lookup.part(
            &format!("SELECT 0, run_id, NULL, NULL, 0 FROM weft_runs WHERE run_id IN ({marks})"),
            chunk.iter().map(|id| Arg::Str(id)).collect(),
        );
    }
    for chunk in keyed.chunks(200) {
        // An OR of key lookups: SQLite answers each from the primary key
        // (a row-value IN would scan the table).
        let terms = vec!["(session_id = ${} AND idem_key = ${})"; chunk.len()].join(" OR ");
        lookup.part(
            &format!("SELECT 1, session_id, idem_key, run_ids, 0 FROM weft_idempotency WHERE {terms}"),
            chunk
                .iter()
                .flat_map(|(s, k)| [Arg::Str(s), Arg::Str(k)])
                .collect(),
        );
    }
    let mut known_keys: std::collections::HashMap<(String, String), Vec<String>> = Default::default();
    let mut known_ids: std::collections::HashSet<String> = Default::default();
    let mut last_seq = 0;
    let cols = [Col::I64, Col::Str, Col::Str, Col::Str, Col::I64];
    for (sql, args) in lookup.finish() {
        for row in tx.rows(&sql, &args, &cols, &ctx).await? {
            let mut row = row.into_iter();
            let (Some(kind), Some(a), Some(b), Some(c), Some(n)) =
                (row.next(), row.next(), row.next(), row.next(), row.next())
            else {
                continue;
            };
            match kind.i64() {
                0 => {
                    known_ids.insert(a.into_string());
                }
                1 => {
                    let ids: Vec<String> = tx.decode(&c.into_string(), &ctx)?;
                    known_keys.insert((a.into_string(), b.into_string()), ids);
                }
                _ => last_seq = last_seq.max(n.i64()),
            }
        }
    }
    // Decide each in order.
    let mut results = Vec::with_capacity(parts.len());
    let mut rows: Vec<(NewRun<'_>, Timestamp)> = Vec::new();
    let mut new_keys: Vec<(&str, &str, String)> = Vec::new();
    for (session_id, items, key, at) in &parts {
        if let Some(key) = key
            && let Some(ids) = known_keys.get(&(session_id.to_string(), key.to_string()))
        {
            results.push(Ok(Output::Enqueued(Enqueued {
                run_ids: ids.clone(),
                replayed: true,
            })));
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        let dup = items
            .iter()
            .find(|(r, ..)| known_ids.contains(&r.run_id) || !seen.insert(r.run_id.as_str()));
        if let Some((r, ..)) = dup {
            results.push(Err(StoreError::DuplicateRun {
                run_id: r.run_id.clone(),
                target: target.to_string(),
            }));
            continue;
        }
        let run_ids: Vec<String> = items.iter().map(|(r, ..)| r.run_id.clone()).collect();
        // A record that does not encode fails its own dispatch only.
        let encoded = tx
            .new_runs(session_id, items, *at, &ctx)
            .and_then(|new| Ok((new, tx.encode(&run_ids, &ctx)?)));
        let (new, ids_text) = match encoded {
            Ok(e) => e,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        known_ids.extend(run_ids.iter().cloned());
        if let Some(key) = key {
            known_keys.insert((session_id.to_string(), key.to_string()), run_ids.clone());
            new_keys.push((session_id, key, ids_text));
        }
        rows.extend(new.into_iter().map(|r| (r, *at)));
        results.push(Ok(Output::Enqueued(Enqueued {
            run_ids,
            replayed: false,
        })));
    }
    // Every insert in one multi-statement call (per ~30,000 parameters).
    // No ON CONFLICT: what was checked above holds under the write lock,
    // and a row that appeared anyway fails the group instead of being
    // skipped.
    let mut inserts = Packer::new("; ");
    for chunk in new_keys.chunks(CHUNK) {
        let values = vec!["(${}, ${}, ${})"; chunk.len()].join(", ");
        inserts.part(
            &format!("INSERT INTO weft_idempotency (session_id, idem_key, run_ids) VALUES {values}"),
            chunk
                .iter()
                .flat_map(|(s, k, ids)| [Arg::Str(s), Arg::Str(k), Arg::Str(ids)])
                .collect(),
        );
    }
    for chunk in rows.chunks(CHUNK) {
        let values = vec!["(${}, ${}, 'queued', ${}, ${}, ${})"; chunk.len()].join(", ");
        inserts.part(
            &format!(
                "INSERT INTO weft_runs (run_id, session_id, status, owner, start_us, record) VALUES {values}"
            ),
            chunk
                .iter()
                .flat_map(|(row, _)| {
                    [
                        Arg::Str(&row.record.run_id),
                        Arg::Str(row.session_id),
                        Arg::OptStr(row.record.owner.as_deref()),
                        Arg::OptI64(row.record.start_time.map(|t| t.as_microsecond())),
                        Arg::Str(&row.text),
                    ]
                })
                .collect(),
        );
    }
    for (c, chunk) in rows.chunks(CHUNK).enumerate() {
        let values = vec!["(${}, ${}, ${}, 'queued', ${}, NULL, NULL, 0, ${}, ${})"; chunk.len()].join(", ");
        let mut args = Vec::with_capacity(chunk.len() * 6);
        for (i, (row, at)) in chunk.iter().enumerate() {
            args.extend([
                Arg::Str(&row.record.run_id),
                Arg::Str(row.session_id),
                Arg::I64(last_seq + 1 + (c * CHUNK + i) as i64),
                Arg::Str(row.spec),
                Arg::I64(row.max_attempts),
                Arg::I64(at.as_microsecond()),
            ]);
        }
        inserts.part(
            &format!(
                "INSERT INTO weft_queue (run_id, session_id, seq, state, spec, lease_owner, lease_expires_us,
                   attempt, max_attempts, enqueued_us) VALUES {values}"
            ),
            args,
        );
    }
    for (sql, args) in inserts.finish() {
        tx.exec(&sql, &args, &ctx).await?;
    }
    Ok(results)
}

/// At most this many parameters per statement (SQLite allows 32,766).
const MAX_PARAMS: usize = 30_000;

/// Packs SQL parts (each with `${}` for its parameters, in order) into as
/// few calls as the parameter limit allows, joined by `sep` (`UNION ALL`,
/// or `;` for several statements in one call). SQLite only: placeholders
/// become plain `?`, which SQLite and sqlx bind in order across the
/// statements of one call (sqlx binds a numbered `?NNN` of a later
/// statement from the start of the argument list, and walks every lower
/// index first).
struct Packer<'a> {
    sep: &'static str,
    sql: String,
    args: Vec<Arg<'a>>,
    done: Vec<(String, Vec<Arg<'a>>)>,
}

impl<'a> Packer<'a> {
    fn new(sep: &'static str) -> Self {
        Packer {
            sep,
            sql: String::new(),
            args: Vec::new(),
            done: Vec::new(),
        }
    }

    fn part(&mut self, template: &str, args: Vec<Arg<'a>>) {
        if !self.sql.is_empty() && self.args.len() + args.len() > MAX_PARAMS {
            self.done
                .push((std::mem::take(&mut self.sql), std::mem::take(&mut self.args)));
        }
        if !self.sql.is_empty() {
            self.sql.push_str(self.sep);
        }
        self.sql.push_str(&template.replace("${}", "?"));
        self.args.extend(args);
    }

    fn finish(mut self) -> Vec<(String, Vec<Arg<'a>>)> {
        if !self.sql.is_empty() {
            self.done.push((self.sql, self.args));
        }
        self.done
    }
}

struct Tx<'a> {
    conn: &'a mut Conn,
    target: &'a str,
}

impl Tx<'_> {
    fn db_err(&self, e: sqlx::Error, ctx: &str) -> StoreError {
        crate::store::classify(self.target, self.conn.is_sqlite(), e, ctx)
    }

    fn json_err(&self, e: serde_json::Error, ctx: &str) -> StoreError {
        StoreError::Malformed {
            target: self.target.to_string(),
            context: ctx.to_string(),
            source: Arc::new(e),
        }
    }

    fn pg(&self) -> bool {
        !self.conn.is_sqlite()
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL.
    fn skip_locked(&self) -> &'static str {
        if self.pg() { " FOR UPDATE SKIP LOCKED" } else { "" }
    }

    /// ` FOR UPDATE` on PostgreSQL.
    fn for_update(&self) -> &'static str {
        if self.pg() { " FOR UPDATE" } else { "" }
    }

    async fn raw(&mut self, sql: &'static str, ctx: &str) -> Result<(), StoreError> {
        let r = self.conn.raw(sql).await;
        r.map_err(|e| self.db_err(e, ctx))
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>], ctx: &str) -> Result<u64, StoreError> {
        let r = self.conn.execute(sql, args).await;
        r.map_err(|e| self.db_err(e, ctx))
    }

    async fn rows(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        cols: &[Col],
        ctx: &str,
    ) -> Result<Vec<Vec<Val>>, StoreError> {
        let r = self.conn.fetch_rows(sql, args, cols).await;
        r.map_err(|e| self.db_err(e, ctx))
    }

    async fn text(&mut self, sql: &str, args: &[Arg<'_>], ctx: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .rows(sql, args, &[Col::Str], ctx)
            .await?
            .into_iter()
            .next()
            .and_then(|mut r| r.pop())
            .and_then(Val::into_opt_string))
    }

    async fn int(&mut self, sql: &str, args: &[Arg<'_>], ctx: &str) -> Result<i64, StoreError> {
        Ok(self
            .rows(sql, args, &[Col::I64], ctx)
            .await?
            .first()
            .and_then(|r| r.first())
            .map_or(0, Val::i64))
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, text: &str, ctx: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.json_err(e, ctx))
    }

    fn encode<T: Serialize>(&self, v: &T, ctx: &str) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| self.json_err(e, ctx))
    }

    async fn run_record(&mut self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let ctx = format!("reading run {run_id}");
        let sql = format!(
            "SELECT record FROM weft_runs WHERE run_id = $1{}",
            self.for_update()
        );
        match self.text(&sql, &[Arg::Str(run_id)], &ctx).await? {
            Some(t) => self.decode(&t, &ctx).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces a run row (the caller checked the transition).
    async fn write_run(&mut self, r: &RunRecord) -> Result<(), StoreError> {
        let ctx = format!("updating run {}", r.run_id);
        let record = self.encode(r, &ctx)?;
        self.exec(
            "UPDATE weft_runs SET status = $1, owner = $2, start_us = $3, record = $4 WHERE run_id = $5",
            &[
                Arg::Str(r.status.as_str()),
                Arg::OptStr(r.owner.as_deref()),
                Arg::OptI64(r.start_time.map(|t| t.as_microsecond())),
                Arg::Str(&record),
                Arg::Str(&r.run_id),
            ],
            &ctx,
        )
        .await
        .map(|_| ())
    }

    async fn set_queue_state(&mut self, run_id: &str, state: &str, ctx: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE weft_queue SET state = $1, lease_owner = NULL, lease_expires_us = NULL WHERE run_id = $2",
            &[Arg::Str(state), Arg::Str(run_id)],
            ctx,
        )
        .await
        .map(|_| ())
    }

    async fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::CreateOrReuse(rec) => self.create_or_reuse(rec).await,
            Op::UpdateSession(rec) => self.update_session(rec).await,
            Op::Enqueue {
                session_id,
                items,
                key,
                now,
            } => self.enqueue(session_id, items, key.as_deref(), *now).await,
            Op::Claim {
                session_id,
                owner,
                max,
                max_concurrency,
                lease,
                now,
            } => {
                self.claim(session_id, owner, *max, *max_concurrency, *lease, *now)
                    .await
            }
            Op::Renew {
                owner,
                run_ids,
                lease,
                now,
            } => self.renew(owner, run_ids, *lease, *now).await,
            Op::Complete { owner, record, now } => self.complete(owner, record, *now).await,
            Op::CancelQueued { run_id, now } => {
                let sql = format!(
                    "SELECT run_id FROM weft_queue WHERE run_id = $1 AND state IN ('queued', 'waiting'){}",
                    self.for_update()
                );
                let ctx = format!("cancelling run {run_id}");
                if self.text(&sql, &[Arg::Str(run_id)], &ctx).await?.is_none() {
                    return Ok(Ok(Output::Done(false, vec![])));
                }
                self.cancel_one(run_id, *now).await?;
                Ok(Ok(Output::Done(true, vec![run_id.clone()])))
            }
            Op::CancelSession { session_id, now } => {
                let sql = format!(
                    "SELECT run_id FROM weft_queue WHERE session_id = $1 AND state IN ('queued', 'waiting') ORDER BY seq{}",
                    self.skip_locked()
                );
                let ctx = format!("cancelling the queue of session {session_id}");
                let ids: Vec<String> = self
                    .rows(&sql, &[Arg::Str(session_id)], &[Col::Str], &ctx)
                    .await?
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().and_then(Val::into_opt_string))
                    .collect();
                for id in &ids {
                    self.cancel_one(id, *now).await?;
                }
                Ok(Ok(Output::Ids(ids.clone(), ids)))
            }
            Op::ProvideInput { run_id, spec, now } => self.provide_input(run_id, spec, *now).await,
            Op::Expire { now, wall, owner } => self.expire(*now, *wall, owner.as_deref()).await,
            Op::Release { owner, now } => self.release(owner, *now).await,
        }
    }

    async fn session_by_key(
        &mut self,
        key: &str,
        ctx: &str,
    ) -> Result<Option<ServerSessionRecord>, StoreError> {
        let found = self
            .text(
                "SELECT record FROM weft_server_sessions WHERE session_key = $1 AND live = 1",
                &[Arg::Str(key)],
                ctx,
            )
            .await?;
        found.map(|t| self.decode(&t, ctx)).transpose()
    }

    async fn create_or_reuse(&mut self, rec: &ServerSessionRecord) -> Outcome {
        let ctx = format!("creating server session {}", rec.session_id);
        let live = rec.is_live();
        let key = rec.key.as_deref().filter(|_| live);
        if let Some(key) = key
            && let Some(found) = self.session_by_key(key, &ctx).await?
        {
            return Ok(Ok(Output::Session(Box::new(found), false)));
        }
        let record = self.encode(rec, &ctx)?;
        let inserted = self
            .exec(
                "INSERT INTO weft_server_sessions
                   (session_id, session_key, live, state, created_us, heartbeat_us, record)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    Arg::Str(&rec.session_id),
                    Arg::OptStr(rec.key.as_deref()),
                    Arg::I64(i64::from(live)),
                    Arg::Str(&rec.state),
                    Arg::I64(rec.created_at.as_microsecond()),
                    Arg::I64(rec.heartbeat_at.as_microsecond()),
                    Arg::Str(&record),
                ],
                &ctx,
            )
            .await?;
        if inserted == 1 {
            return Ok(Ok(Output::Session(Box::new(rec.clone()), true)));
        }
        // Another process took the key meanwhile (PostgreSQL: its insert
        // committed while ours waited), or the id exists.
        if let Some(key) = key
            && let Some(found) = self.session_by_key(key, &ctx).await?
        {
            return Ok(Ok(Output::Session(Box::new(found), false)));
        }
        Ok(Err(StoreError::DuplicateSession {
            session_id: rec.session_id.clone(),
            target: self.target.to_string(),
        }))
    }

    async fn update_session(&mut self, rec: &ServerSessionRecord) -> Outcome {
        let ctx = format!("updating server session {}", rec.session_id);
        let record = self.encode(rec, &ctx)?;
        let updated = self
            .exec(
                "UPDATE weft_server_sessions SET session_key = $1, live = $2, state = $3,
                   created_us = $4, heartbeat_us = $5, record = $6 WHERE session_id = $7",
                &[
                    Arg::OptStr(rec.key.as_deref()),
                    Arg::I64(i64::from(rec.is_live())),
                    Arg::Str(&rec.state),
                    Arg::I64(rec.created_at.as_microsecond()),
                    Arg::I64(rec.heartbeat_at.as_microsecond()),
                    Arg::Str(&record),
                    Arg::Str(&rec.session_id),
                ],
                &ctx,
            )
            .await?;
        if updated == 0 {
            return Ok(Err(StoreError::SessionNotFound {
                session_id: rec.session_id.clone(),
                target: self.target.to_string(),
            }));
        }
        Ok(Ok(Output::Unit))
    }

    async fn replayed(
        &mut self,
        session_id: &str,
        key: &str,
        ctx: &str,
    ) -> Result<Option<Enqueued>, StoreError> {
        let found = self
            .text(
                "SELECT run_ids FROM weft_idempotency WHERE session_id = $1 AND idem_key = $2",
                &[Arg::Str(session_id), Arg::Str(key)],
                ctx,
            )
            .await?;
        match found {
            Some(t) => Ok(Some(Enqueued {
                run_ids: self.decode(&t, ctx)?,
                replayed: true,
            })),
            None => Ok(None),
        }
    }

    async fn enqueue(
        &mut self,
        session_id: &str,
        items: &[(RunRecord, String, u32)],
        key: Option<&str>,
        now: Timestamp,
    ) -> Outcome {
        let ctx = match items {
            [(r, ..)] => format!("enqueuing run {} in session {session_id}", r.run_id),
            _ => format!("enqueuing {} runs in session {session_id}", items.len()),
        };
        if let Some(key) = key
            && let Some(found) = self.replayed(session_id, key, &ctx).await?
        {
            return Ok(Ok(Output::Enqueued(found)));
        }
        let duplicate = |run_id: &str| StoreError::DuplicateRun {
            run_id: run_id.to_string(),
            target: self.target.to_string(),
        };
        let mut seen = std::collections::HashSet::new();
        if let Some((r, ..)) = items.iter().find(|(r, ..)| !seen.insert(r.run_id.as_str())) {
            return Ok(Err(duplicate(&r.run_id)));
        }
        let run_ids: Vec<String> = items.iter().map(|(r, ..)| r.run_id.clone()).collect();
        if let Some(key) = key {
            let ids = self.encode(&run_ids, &ctx)?;
            let inserted = self
                .exec(
                    "INSERT INTO weft_idempotency (session_id, idem_key, run_ids) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[Arg::Str(session_id), Arg::Str(key), Arg::Str(&ids)],
                    &ctx,
                )
                .await?;
            if inserted == 0 {
                // A concurrent dispatch with the key committed first.
                if let Some(found) = self.replayed(session_id, key, &ctx).await? {
                    return Ok(Ok(Output::Enqueued(found)));
                }
            }
        }
        let rows = self.new_runs(session_id, items, now, &ctx)?;
        let inserted = self.insert_runs(&rows, now, &ctx).await?;
        if inserted != rows.len() as u64 {
            // Name the first id recorded before this call: its stored
            // record is not the one just written.
            for row in &rows {
                let stored = self
                    .text(
                        "SELECT record FROM weft_runs WHERE run_id = $1",
                        &[Arg::Str(&row.record.run_id)],
                        &ctx,
                    )
                    .await?;
                if stored.as_deref() != Some(row.text.as_str()) {
                    return Ok(Err(duplicate(&row.record.run_id)));
                }
            }
            return Ok(Err(duplicate(&run_ids[0])));
        }
        Ok(Ok(Output::Enqueued(Enqueued {
            run_ids,
            replayed: false,
        })))
    }

    /// The rows of an enqueue: run records `queued` in `session_id`.
    fn new_runs<'i>(
        &self,
        session_id: &'i str,
        items: &'i [(RunRecord, String, u32)],
        now: Timestamp,
        ctx: &str,
    ) -> Result<Vec<NewRun<'i>>, StoreError> {
        items
            .iter()
            .map(|(r, spec, max)| {
                let record = RunRecord {
                    session_id: session_id.to_string(),
                    status: RunStatus::Queued,
                    updated_at: Some(now),
                    ..r.clone()
                };
                Ok(NewRun {
                    text: self.encode(&record, ctx)?,
                    record,
                    session_id,
                    spec,
                    max_attempts: i64::from((*max).max(1)),
                })
            })
            .collect()
    }

    /// Inserts the run rows (a run id recorded already is skipped) and the
    /// queue rows after the last `seq`, in order; returns how many run
    /// rows were inserted.
    async fn insert_runs(
        &mut self,
        rows: &[NewRun<'_>],
        now: Timestamp,
        ctx: &str,
    ) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for chunk in rows.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO weft_runs (run_id, session_id, status, owner, start_us, record) VALUES ",
            );
            let mut args = Vec::with_capacity(chunk.len() * 5);
            for (i, row) in chunk.iter().enumerate() {
                push_row(&mut sql, i, 5, "(${}, ${}, 'queued', ${}, ${}, ${})");
                args.extend([
                    Arg::Str(&row.record.run_id),
                    Arg::Str(row.session_id),
                    Arg::OptStr(row.record.owner.as_deref()),
                    Arg::OptI64(row.record.start_time.map(|t| t.as_microsecond())),
                    Arg::Str(&row.text),
                ]);
            }
            sql.push_str(" ON CONFLICT (run_id) DO NOTHING");
            inserted += self.exec(&sql, &args, ctx).await?;
        }
        if inserted != rows.len() as u64 {
            return Ok(inserted);
        }
        // The places in line: from a sequence on PostgreSQL, after the
        // last one on SQLite (the writer holds the write lock).
        let seqs: Vec<i64> = if self.pg() {
            let mut seqs: Vec<i64> = self
                .rows(
                    "SELECT nextval('weft_queue_seq_gen') AS n FROM generate_series(1, $1)",
                    &[Arg::I64(rows.len() as i64)],
                    &[Col::I64],
                    ctx,
                )
                .await?
                .iter()
                .filter_map(|r| r.first().map(Val::i64))
                .collect();
            seqs.sort_unstable();
            seqs
        } else {
            let base = self
                .int("SELECT COALESCE(MAX(seq), 0) FROM weft_queue", &[], ctx)
                .await?;
            (1..=rows.len() as i64).map(|i| base + i).collect()
        };
        let enqueued_us = now.as_microsecond();
        for (c, chunk) in rows.chunks(CHUNK).enumerate() {
            let mut sql = String::from(
                "INSERT INTO weft_queue (run_id, session_id, seq, state, spec, lease_owner, lease_expires_us,
                   attempt, max_attempts, enqueued_us) VALUES ",
            );
            let mut args = Vec::with_capacity(chunk.len() * 6);
            for (i, row) in chunk.iter().enumerate() {
                push_row(
                    &mut sql,
                    i,
                    6,
                    "(${}, ${}, ${}, 'queued', ${}, NULL, NULL, 0, ${}, ${})",
                );
                args.extend([
                    Arg::Str(&row.record.run_id),
                    Arg::Str(row.session_id),
                    Arg::I64(seqs.get(c * CHUNK + i).copied().unwrap_or_default()),
                    Arg::Str(row.spec),
                    Arg::I64(row.max_attempts),
                    Arg::I64(enqueued_us),
                ]);
            }
            self.exec(&sql, &args, ctx).await?;
        }
        Ok(inserted)
    }

    async fn claim(
        &mut self,
        session_id: &str,
        owner: &str,
        max: u32,
        max_concurrency: u32,
        lease: Duration,
        now: Timestamp,
    ) -> Outcome {
        let ctx = format!("claiming runs of session {session_id}");
        if self.pg() {
            // One claimer per session at a time, across processes: the
            // leased count below stays exact.
            self.exec(
                "SELECT pg_advisory_xact_lock(7271831, hashtext($1))",
                &[Arg::Str(session_id)],
                &ctx,
            )
            .await?;
        }
        let leased = self
            .int(
                "SELECT COUNT(*) FROM weft_queue WHERE session_id = $1 AND state = 'leased'",
                &[Arg::Str(session_id)],
                &ctx,
            )
            .await?;
        let room = i64::from(max_concurrency).saturating_sub(leased).max(0);
        let take = room.min(i64::from(max));
        if take == 0 {
            return Ok(Ok(Output::Claimed(vec![])));
        }
        let sql = format!(
            "SELECT run_id, spec, attempt, enqueued_us FROM weft_queue WHERE session_id = $1 AND state = 'queued'
             ORDER BY seq LIMIT $2{}",
            self.skip_locked()
        );
        let rows = self
            .rows(
                &sql,
                &[Arg::Str(session_id), Arg::I64(take)],
                &[Col::Str, Col::Str, Col::I64, Col::I64],
                &ctx,
            )
            .await?;
        let expires = now.as_microsecond().saturating_add(micros(lease));
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let mut row = row.into_iter();
            let (Some(run_id), Some(spec), Some(attempt), Some(enqueued_us)) =
                (row.next(), row.next(), row.next(), row.next())
            else {
                continue;
            };
            let (run_id, spec, attempt) = (run_id.into_string(), spec.into_string(), attempt.i64() + 1);
            let enqueued_at = Timestamp::from_microsecond(enqueued_us.i64()).unwrap_or(now);
            let ctx = format!("claiming run {run_id}");
            let record = self.run_record(&run_id).await?;
            let Some(mut record) = record.filter(|r| {
                RunStatus::can_transition(r.status, RunStatus::Running) && r.status == RunStatus::Queued
            }) else {
                // Its run row finished some other way: it will not run.
                self.set_queue_state(&run_id, "done", &ctx).await?;
                continue;
            };
            self.exec(
                "UPDATE weft_queue SET state = 'leased', lease_owner = $1, lease_expires_us = $2,
                   attempt = $3 WHERE run_id = $4",
                &[
                    Arg::Str(owner),
                    Arg::I64(expires),
                    Arg::I64(attempt),
                    Arg::Str(&run_id),
                ],
                &ctx,
            )
            .await?;
            record.status = RunStatus::Running;
            record.owner = Some(owner.to_string());
            record.attempts = u32::try_from(attempt).unwrap_or(u32::MAX);
            record.start_time = Some(now);
            record.end_time = None;
            record.duration_ms = None;
            record.error = None;
            record.node_timings.clear();
            record.updated_at = Some(now);
            self.write_run(&record).await?;
            let spec = self.decode(&spec, &ctx)?;
            claimed.push(Claimed {
                run_id,
                session_id: session_id.to_string(),
                spec,
                attempt: record.attempts,
                enqueued_at,
            });
        }
        Ok(Ok(Output::Claimed(claimed)))
    }

    async fn renew(&mut self, owner: &str, run_ids: &[String], lease: Duration, now: Timestamp) -> Outcome {
        let expires = now.as_microsecond().saturating_add(micros(lease));
        let mut lost = Vec::new();
        for id in run_ids {
            let ctx = format!("renewing the lease of run {id}");
            let n = self
                .exec(
                    "UPDATE weft_queue SET lease_expires_us = $1
                     WHERE run_id = $2 AND state = 'leased' AND lease_owner = $3",
                    &[Arg::I64(expires), Arg::Str(id), Arg::Str(owner)],
                    &ctx,
                )
                .await?;
            if n == 0 {
                lost.push(id.clone());
            }
        }
        Ok(Ok(Output::Ids(lost, vec![])))
    }

    /// Few statements (round trips on PostgreSQL): the queue row is taken
    /// first, a refusal after it is undone by the caller (savepoint or
    /// transaction rollback).
    async fn complete(&mut self, owner: &str, record: &RunRecord, now: Timestamp) -> Outcome {
        let run_id = &record.run_id;
        let ctx = format!("completing run {run_id}");
        // A run that paused for input keeps its queue row, `waiting`, until
        // it is answered (Store::provide_input) or cancelled.
        let paused = record.status == RunStatus::InputRequired;
        let held = self
            .text(
                "UPDATE weft_queue SET state = $3, lease_owner = NULL, lease_expires_us = NULL
                 WHERE run_id = $1 AND state = 'leased' AND lease_owner = $2 RETURNING run_id",
                &[
                    Arg::Str(run_id),
                    Arg::Str(owner),
                    Arg::Str(if paused { "waiting" } else { "done" }),
                ],
                &ctx,
            )
            .await?;
        if held.is_none() {
            return Ok(Ok(Output::Done(false, vec![])));
        }
        let mut written = 0;
        if record.status.is_terminal() || paused {
            let record = RunRecord {
                updated_at: Some(now),
                ..record.clone()
            };
            let text = self.encode(&record, &ctx)?;
            // `,running,`: the statuses it may come from.
            let mut sources = String::from(",");
            for st in RunStatus::sources(record.status) {
                sources.push_str(st.as_str());
                sources.push(',');
            }
            written = self
                .exec(
                    "UPDATE weft_runs SET status = $1, owner = $2, start_us = $3, record = $4
                     WHERE run_id = $5 AND $6 LIKE '%,' || status || ',%'",
                    &[
                        Arg::Str(record.status.as_str()),
                        Arg::OptStr(record.owner.as_deref()),
                        Arg::OptI64(record.start_time.map(|t| t.as_microsecond())),
                        Arg::Str(&text),
                        Arg::Str(run_id),
                        Arg::Str(&sources),
                    ],
                    &ctx,
                )
                .await?;
        }
        if written == 1 {
            return Ok(Ok(Output::Done(true, vec![run_id.clone()])));
        }
        let stored = self
            .text(
                "SELECT status FROM weft_runs WHERE run_id = $1",
                &[Arg::Str(run_id)],
                &ctx,
            )
            .await?;
        Ok(Err(match stored {
            None => StoreError::RunNotFound {
                run_id: run_id.clone(),
                target: self.target.to_string(),
            },
            Some(from) => StoreError::InvalidTransition {
                run_id: run_id.clone(),
                from,
                to: record.status.to_string(),
            },
        }))
    }

    /// A `waiting` run goes back to `queued` (same `seq`: it is claimed
    /// before runs queued after it) with its answered spec; its run row
    /// goes from `input_required` to `queued`.
    async fn provide_input(&mut self, run_id: &str, spec: &str, now: Timestamp) -> Outcome {
        let ctx = format!("resuming run {run_id}");
        let resumed = self
            .text(
                "UPDATE weft_queue SET state = 'queued', spec = $2
                 WHERE run_id = $1 AND state = 'waiting' RETURNING run_id",
                &[Arg::Str(run_id), Arg::Str(spec)],
                &ctx,
            )
            .await?;
        if resumed.is_none() {
            return Ok(Ok(Output::Done(false, vec![])));
        }
        if let Some(mut r) = self.run_record(run_id).await?
            && RunStatus::can_transition(r.status, RunStatus::Queued)
        {
            r.status = RunStatus::Queued;
            r.pending_input = None;
            r.owner = None;
            r.updated_at = Some(now);
            self.write_run(&r).await?;
        }
        Ok(Ok(Output::Done(true, vec![run_id.to_string()])))
    }

    /// A queued run (its queue row locked by the caller) becomes done and
    /// its run row `cancelled`.
    async fn cancel_one(&mut self, run_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let ctx = format!("cancelling run {run_id}");
        self.set_queue_state(run_id, "done", &ctx).await?;
        if let Some(mut r) = self.run_record(run_id).await?
            && RunStatus::can_transition(r.status, RunStatus::Cancelled)
        {
            r.status = RunStatus::Cancelled;
            r.end_time = Some(now);
            r.duration_ms = None;
            r.owner = None;
            r.updated_at = Some(now);
            self.write_run(&r).await?;
        }
        Ok(())
    }

    async fn expire(&mut self, now: Timestamp, wall: Timestamp, of: Option<&str>) -> Outcome {
        let ctx = "expiring leases";
        let (filter, arg) = match of {
            Some(owner) => ("lease_owner = $1", Arg::Str(owner)),
            None => ("lease_expires_us <= $1", Arg::I64(now.as_microsecond())),
        };
        let sql = format!(
            "SELECT run_id, session_id, attempt, max_attempts, lease_owner FROM weft_queue
             WHERE state = 'leased' AND {filter} ORDER BY seq{}",
            self.skip_locked()
        );
        let rows = self
            .rows(
                &sql,
                &[arg],
                &[Col::Str, Col::Str, Col::I64, Col::I64, Col::Str],
                ctx,
            )
            .await?;
        let mut expired = Vec::new();
        for row in rows {
            let mut row = row.into_iter();
            let (Some(run_id), Some(session_id), Some(attempt), Some(max), Some(owner)) =
                (row.next(), row.next(), row.next(), row.next(), row.next())
            else {
                continue;
            };
            let (run_id, session_id) = (run_id.into_string(), session_id.into_string());
            let owner = owner.into_opt_string().unwrap_or_else(|| "?".into());
            let ctx = format!("expiring the lease of run {run_id}");
            let record = self.run_record(&run_id).await?;
            let Some(mut r) = record.filter(|r| r.status == RunStatus::Running) else {
                // Its run row finished some other way.
                self.set_queue_state(&run_id, "done", &ctx).await?;
                continue;
            };
            RunStatus::check_transition(&run_id, r.status, RunStatus::Interrupted)?;
            r.status = RunStatus::Interrupted;
            let died = r.updated_at.unwrap_or(wall);
            r.end_time = Some(died);
            r.duration_ms = duration_ms(r.start_time, died);
            r.error = Some(RunErrorRecord {
                kind: "interrupted".into(),
                message: format!("its lease (held by {owner}, attempt {}) expired", attempt.i64()),
                node: None,
                causes: vec![],
            });
            let requeued = attempt.i64() < max.i64();
            if requeued {
                RunStatus::check_transition(&run_id, r.status, RunStatus::Queued)?;
                r.status = RunStatus::Queued;
                r.owner = None;
                r.end_time = None;
                r.duration_ms = None;
                self.set_queue_state(&run_id, "queued", &ctx).await?;
            } else {
                self.set_queue_state(&run_id, "done", &ctx).await?;
            }
            r.updated_at = Some(wall);
            self.write_run(&r).await?;
            expired.push(ExpiredLease {
                run_id,
                session_id,
                requeued,
            });
        }
        Ok(Ok(Output::Expired(expired)))
    }

    async fn release(&mut self, owner: &str, now: Timestamp) -> Outcome {
        let ctx = format!("releasing the leases of {owner}");
        let sql = format!(
            "SELECT run_id FROM weft_queue WHERE state = 'leased' AND lease_owner = $1 ORDER BY seq{}",
            self.for_update()
        );
        let ids: Vec<String> = self
            .rows(&sql, &[Arg::Str(owner)], &[Col::Str], &ctx)
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().and_then(Val::into_opt_string))
            .collect();
        let mut released = 0;
        let mut touched = Vec::new();
        for id in ids {
            let record = self.run_record(&id).await?;
            let Some(mut r) = record.filter(|r| r.status == RunStatus::Running) else {
                self.set_queue_state(&id, "done", &ctx).await?;
                touched.push(id);
                continue;
            };
            // running → interrupted → queued, each step checked.
            RunStatus::check_transition(&id, r.status, RunStatus::Interrupted)?;
            RunStatus::check_transition(&id, RunStatus::Interrupted, RunStatus::Queued)?;
            self.exec(
                "UPDATE weft_queue SET state = 'queued', lease_owner = NULL, lease_expires_us = NULL,
                   attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END WHERE run_id = $1",
                &[Arg::Str(&id)],
                &ctx,
            )
            .await?;
            r.status = RunStatus::Queued;
            r.owner = None;
            r.attempts = r.attempts.saturating_sub(1);
            r.updated_at = Some(now);
            self.write_run(&r).await?;
            released += 1;
            touched.push(id);
        }
        Ok(Ok(Output::Count(released, touched)))
    }
}

impl Store {
    /// Runs `op` in one transaction: through the writer on SQLite, on a
    /// pooled connection on PostgreSQL (retried on a deadlock or
    /// serialization failure).
    async fn queue_op(&self, op: Op) -> Result<Output, StoreError> {
        match self.pg_pool() {
            None => {
                let slot: OutSlot = Arc::new(Mutex::new(None));
                let out = slot.clone();
                let op = Box::new(op);
                self.writer_handle()
                    .call(|reply| crate::writer::Job::Queue { op, out, reply })
                    .await?;
                let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                taken.ok_or_else(|| self.closed_error())
            }
            Some(pool) => {
                self.settle_writes().await?;
                let mut attempt = 0;
                loop {
                    let conn = pool.acquire().await.map_err(|e| {
                        crate::store::classify(self.target(), false, e, "taking a connection")
                    })?;
                    let mut conn = Conn::PgPooled(conn);
                    match apply_in_transaction(&mut conn, self.target(), &op).await {
                        Ok(Ok(out)) => {
                            let run_ids: Vec<String> =
                                out.touched().into_iter().map(str::to_string).collect();
                            if !run_ids.is_empty() {
                                // This handle's writer may hold their old
                                // running records for progress updates.
                                self.writer_handle()
                                    .post(crate::writer::Job::Forget { run_ids })?;
                            }
                            return Ok(out);
                        }
                        Ok(Err(refused)) => return Err(refused),
                        Err(e) if attempt < 5 && retryable(&e) => attempt += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Atomic reuse-or-reserve: with a key and a live session holding it,
    /// returns (that session, false); otherwise inserts `rec` and returns
    /// (rec, true). N concurrent calls with one key (threads, or processes
    /// sharing a PostgreSQL store) yield one session. A session id
    /// recorded already is [`StoreError::DuplicateSession`].
    pub async fn create_or_reuse_server_session(
        &self,
        rec: &ServerSessionRecord,
    ) -> Result<(ServerSessionRecord, bool), StoreError> {
        match self.queue_op(Op::CreateOrReuse(Box::new(rec.clone()))).await? {
            Output::Session(s, created) => Ok((*s, created)),
            _ => Err(self.closed_error()),
        }
    }

    /// Replaces a server session's record (state, heartbeat, reason, ...).
    /// An unknown id is [`StoreError::SessionNotFound`]; a session that
    /// leaves the live states frees its key.
    pub async fn update_server_session(&self, rec: &ServerSessionRecord) -> Result<(), StoreError> {
        self.queue_op(Op::UpdateSession(Box::new(rec.clone())))
            .await
            .map(|_| ())
    }

    /// One server session.
    pub async fn get_server_session(&self, id: &str) -> Result<Option<ServerSessionRecord>, StoreError> {
        Ok(self
            .read_records(
                "SELECT record FROM weft_server_sessions WHERE session_id = $1",
                &[Arg::Str(id)],
                format!("reading server session {id}"),
            )
            .await?
            .pop())
    }

    /// Server sessions, oldest first; with `live_only`, those not in a
    /// terminal state ([`NOT_LIVE_STATES`]).
    pub async fn list_server_sessions(
        &self,
        live_only: bool,
    ) -> Result<Vec<ServerSessionRecord>, StoreError> {
        self.read_records(
            "SELECT record FROM weft_server_sessions WHERE live >= $1 ORDER BY created_us, session_id",
            &[Arg::I64(i64::from(live_only))],
            "listing server sessions".into(),
        )
        .await
    }

    /// One transaction: the run rows (status `queued`), the queue rows
    /// and, with a key, the idempotency row; committed (durable) before it
    /// returns. A key seen before for this session returns the first
    /// call's run ids with `replayed = true` and writes nothing. A
    /// duplicate run id (recorded already, or twice in `items`) is
    /// [`StoreError::DuplicateRun`] and writes nothing.
    pub async fn enqueue(
        &self,
        session_id: &str,
        items: &[QueueItem],
        idempotency_key: Option<&str>,
    ) -> Result<Enqueued, StoreError> {
        let mut encoded = Vec::with_capacity(items.len());
        for item in items {
            let ctx = format!("encoding the spec of run {}", item.run.run_id);
            let spec = serde_json::to_string(&item.spec).map_err(|e| StoreError::Malformed {
                target: self.target().to_string(),
                context: ctx,
                source: Arc::new(e),
            })?;
            encoded.push((item.run.clone(), spec, item.max_attempts));
        }
        let op = Op::Enqueue {
            session_id: session_id.to_string(),
            items: encoded,
            key: idempotency_key.map(str::to_string),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Enqueued(e) => Ok(e),
            _ => Err(self.closed_error()),
        }
    }

    /// Claims up to `max` queued runs of one session, FIFO, never more than
    /// `max_concurrency` leased at once in that session (counting the
    /// leases of every owner and process), each leased to `owner` until
    /// now + `lease`. Their run rows become `running` with `owner` set,
    /// the start time now, the attempt counted and the error and node
    /// timings of an earlier attempt cleared.
    pub async fn claim(
        &self,
        session_id: &str,
        owner: &str,
        max: u32,
        max_concurrency: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let op = Op::Claim {
            session_id: session_id.to_string(),
            owner: owner.to_string(),
            max,
            max_concurrency,
            lease,
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Claimed(c) => Ok(c),
            _ => Err(self.closed_error()),
        }
    }

    /// Extends the leases `owner` holds on these runs to now + `lease`;
    /// returns the ids it no longer holds.
    pub async fn renew_leases(
        &self,
        owner: &str,
        run_ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let op = Op::Renew {
            owner: owner.to_string(),
            run_ids: run_ids.to_vec(),
            lease,
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Ids(lost, _) => Ok(lost),
            _ => Err(self.closed_error()),
        }
    }

    /// Atomically: the queue row becomes done and the run row is replaced
    /// by `record` (a terminal status), only if `owner` still holds the
    /// lease. Returns false (and writes nothing) when the lease was lost:
    /// no run finishes twice. A `record` whose status is not terminal, or
    /// not reachable from the stored one, is
    /// [`StoreError::InvalidTransition`] (nothing written).
    pub async fn complete(&self, owner: &str, record: &RunRecord) -> Result<bool, StoreError> {
        let op = Op::Complete {
            owner: owner.to_string(),
            record: Box::new(record.clone()),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Done(done, _) => Ok(done),
            _ => Err(self.closed_error()),
        }
    }

    /// The spec of a run paused for input (its queue row `waiting`), or
    /// `None` when it is not waiting.
    pub async fn waiting_spec(&self, run_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let rows = self
            .read_rows(
                "SELECT spec AS state, attempt AS n FROM weft_queue WHERE run_id = $1 AND state = 'waiting'",
                &[Arg::Str(run_id)],
                format!("reading the spec of run {run_id}"),
            )
            .await?;
        match rows.into_iter().next() {
            None => Ok(None),
            Some((text, _)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::Malformed {
                    target: self.target().to_string(),
                    context: format!("reading the spec of run {run_id}"),
                    source: Arc::new(e),
                }),
        }
    }

    /// A run paused for input is queued again with `spec` (its spec with
    /// the answer added), keeping its place in the session's FIFO. Returns
    /// false when it is not waiting (answered meanwhile, or cancelled).
    pub async fn provide_input(&self, run_id: &str, spec: &serde_json::Value) -> Result<bool, StoreError> {
        let op = Op::ProvideInput {
            run_id: run_id.to_string(),
            spec: spec.to_string(),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Done(done, _) => Ok(done),
            _ => Err(self.closed_error()),
        }
    }

    /// A queued (not leased) run, or one paused for input, becomes done and
    /// its run row `cancelled` (end time now). Returns false when it is
    /// neither (any more).
    pub async fn cancel_queued(&self, run_id: &str) -> Result<bool, StoreError> {
        let op = Op::CancelQueued {
            run_id: run_id.to_string(),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Done(done, _) => Ok(done),
            _ => Err(self.closed_error()),
        }
    }

    /// Every queued run of the session becomes `cancelled` (terminate with
    /// mode=cancel, expiry). Returns their ids, FIFO.
    pub async fn cancel_session_queue(&self, session_id: &str) -> Result<Vec<String>, StoreError> {
        let op = Op::CancelSession {
            session_id: session_id.to_string(),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Ids(ids, _) => Ok(ids),
            _ => Err(self.closed_error()),
        }
    }

    /// Leases expired at `now`: the run is recorded `interrupted` (end time
    /// = its `updated_at`, error kind `interrupted`) and, when its attempt
    /// < max_attempts, put back to `queued` (same run id and FIFO place)
    /// with its run row `queued` again (the interruption kept as its
    /// `error` until it is claimed).
    pub async fn expire_leases(&self, now: Timestamp) -> Result<Vec<ExpiredLease>, StoreError> {
        let op = Op::Expire {
            now,
            wall: Timestamp::now(),
            owner: None,
        };
        match self.queue_op(op).await? {
            Output::Expired(e) => Ok(e),
            _ => Err(self.closed_error()),
        }
    }

    /// [`Store::expire_leases`] for every lease whose owner is a process of
    /// this host that is gone, whatever its expiry time: for a server
    /// restarting after a crash (`kill -9`), so the runs it was running are
    /// `interrupted` (and requeued while attempts are left) at once instead
    /// of when their leases run out. An owner names its process as
    /// [`crate::current_owner`] does (`host:pid`), optionally followed by
    /// `/` and anything (`host:pid/worker-3`); other owners and other
    /// hosts' are left to [`Store::expire_leases`].
    pub async fn expire_leases_of_dead_owners(&self) -> Result<Vec<ExpiredLease>, StoreError> {
        let owners = self
            .read_rows(
                "SELECT lease_owner AS state, COUNT(*) AS n FROM weft_queue
                 WHERE state = 'leased' AND lease_owner IS NOT NULL GROUP BY lease_owner",
                &[],
                "listing lease owners".into(),
            )
            .await?;
        let host = crate::store::hostname();
        let mut expired = Vec::new();
        for (owner, _) in owners {
            let process = owner.split('/').next().unwrap_or_default();
            let Some((owner_host, pid)) = process.rsplit_once(':') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            if owner_host != host || crate::store::process_alive(pid) {
                continue;
            }
            let op = Op::Expire {
                now: Timestamp::now(),
                wall: Timestamp::now(),
                owner: Some(owner.clone()),
            };
            match self.queue_op(op).await? {
                Output::Expired(e) => expired.extend(e),
                _ => return Err(self.closed_error()),
            }
        }
        Ok(expired)
    }

    /// Graceful shutdown: the leases of `owner` go back to `queued` (run
    /// rows `queued`), the attempt not counted. Returns how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let op = Op::Release {
            owner: owner.to_string(),
            now: Timestamp::now(),
        };
        match self.queue_op(op).await? {
            Output::Count(n, _) => Ok(n),
            _ => Err(self.closed_error()),
        }
    }

    /// How many runs of the session are queued and leased.
    pub async fn queue_counts(&self, session_id: &str) -> Result<QueueCounts, StoreError> {
        let rows = self
            .read_rows(
                "SELECT state, COUNT(*) AS n FROM weft_queue WHERE session_id = $1 AND state <> 'done' GROUP BY state",
                &[Arg::Str(session_id)],
                format!("counting the queue of session {session_id}"),
            )
            .await?;
        let mut counts = QueueCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => counts.queued = n,
                "leased" => counts.leased = n,
                "waiting" => counts.waiting = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// How many runs of a session have each status (statuses with none
    /// left out), for a session's summary. A stored status this build does
    /// not know is [`StoreError::Malformed`].
    pub async fn run_status_counts(
        &self,
        session_id: &str,
    ) -> Result<std::collections::BTreeMap<RunStatus, u64>, StoreError> {
        let ctx = format!("counting the runs of session {session_id}");
        let rows = self
            .read_rows(
                "SELECT status AS state, COUNT(*) AS n FROM weft_runs WHERE session_id = $1 GROUP BY status",
                &[Arg::Str(session_id)],
                ctx.clone(),
            )
            .await?;
        let mut counts = std::collections::BTreeMap::new();
        for (status, n) in rows {
            let status: RunStatus =
                serde_json::from_value(serde_json::Value::String(status)).map_err(|e| {
                    StoreError::Malformed {
                        target: self.target().to_string(),
                        context: ctx.clone(),
                        source: Arc::new(e),
                    }
                })?;
            counts.insert(status, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }

    /// Live sessions that have queued runs, the one waiting longest first
    /// (for round-robin scheduling).
    pub async fn sessions_with_queued_runs(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .read_rows(
                "SELECT q.session_id AS state, MIN(q.seq) AS n FROM weft_queue q
                 JOIN weft_server_sessions s ON s.session_id = q.session_id
                 WHERE q.state = 'queued' AND s.live = 1
                 GROUP BY q.session_id ORDER BY MIN(q.seq)",
                &[],
                "listing sessions with queued runs".into(),
            )
            .await?;
        Ok(rows.into_iter().map(|(s, _)| s).collect())
    }
}

/// A PostgreSQL deadlock or serialization failure: the transaction may be
/// retried.
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database { source, .. } => match source.as_ref() {
            sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packer_joins_parts_and_splits_at_the_parameter_limit() {
        let mut p = Packer::new("; ");
        p.part("A (${}, ${})", vec![Arg::I64(1), Arg::I64(2)]);
        p.part("B ${}", vec![Arg::I64(3)]);
        p.part("C", vec![]);
        let done = p.finish();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "A (?, ?); B ?; C");
        assert_eq!(done[0].1.len(), 3);

        let mut p = Packer::new(" UNION ALL ");
        let big = vec![Arg::I64(0); MAX_PARAMS - 1];
        p.part(&vec!["${}"; MAX_PARAMS - 1].join(","), big);
        p.part("X ${} ${}", vec![Arg::I64(1), Arg::I64(2)]);
        let done = p.finish();
        assert_eq!(done.len(), 2);
        assert_eq!(done[1].0, "X ? ?");
    }
}
