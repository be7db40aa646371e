//! The durable run queue and the server sessions, on both backends.
//! PostgreSQL tests need a real server: run them through
//! `scripts/with-postgres.sh cargo nextest run -p weft-store` (they fail,
//! never skip, when `WEFT_TEST_POSTGRES_URL` is unset). Each PostgreSQL
//! test works in its own schema.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Row};
use weft_store::{
    Claimed, QueueCounts, QueueItem, RunRecord, RunStatus, ServerSessionRecord, Store, StoreError,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty store location (a temp file or a new PostgreSQL schema).
struct Target {
    url: String,
    file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_base_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_POSTGRES_URL is not set: PostgreSQL tests need a real server; run them \
             through scripts/with-postgres.sh, e.g. `scripts/with-postgres.sh cargo nextest run -p weft-store`"
        )
    })
}

async fn target(kind: Kind) -> Target {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("weft.db");
            Target {
                url: file.display().to_string(),
                file: Some(file),
                _dir: Some(dir),
            }
        }
        Kind::Postgres => {
            let base = pg_base_url();
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            Target {
                url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                file: None,
                _dir: None,
            }
        }
    }
}

/// Runs raw SQL statements on the target, bypassing the store.
async fn raw_exec(t: &Target, sqls: &[&str]) {
    match t.file {
        Some(ref f) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", f.display()))
                .await
                .unwrap();
            for sql in sqls {
                sqlx::query(AssertSqlSafe(sql.to_string()))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            c.close().await.unwrap();
        }
        None => {
            let mut c = sqlx::PgConnection::connect(&t.url).await.unwrap();
            for sql in sqls {
                sqlx::query(AssertSqlSafe(sql.to_string()))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            c.close().await.unwrap();
        }
    }
}

async fn raw_i64(t: &Target, sql: &str) -> i64 {
    match t.file {
        Some(ref f) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.display()))
                .await
                .unwrap();
            let v = sqlx::query(AssertSqlSafe(sql.to_string()))
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get::<i64, _>(0);
            c.close().await.unwrap();
            v
        }
        None => {
            let mut c = sqlx::PgConnection::connect(&t.url).await.unwrap();
            let v = sqlx::query(AssertSqlSafe(sql.to_string()))
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get::<i64, _>(0);
            c.close().await.unwrap();
            v
        }
    }
}

fn session(id: &str, key: Option<&str>) -> ServerSessionRecord {
    let now = Timestamp::now();
    ServerSessionRecord {
        session_id: id.into(),
        key: key.map(str::to_string),
        project_path: "/tmp/project".into(),
        env: Some("local".into()),
        state: "ready".into(),
        reason: None,
        idle_ttl_s: 600,
        max_concurrency: 2,
        created_at: now,
        heartbeat_at: now,
        closed_at: None,
        extra: json!({"pending_input": null}),
    }
}

fn run_id(i: u32) -> String {
    format!("2026-01-01T00.00.00.{i:06}Z-{i:08x}")
}

fn run(session: &str, id: &str) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        session_id: session.into(),
        run_index: 0,
        status: RunStatus::Queued,
        env: "local".into(),
        runtime_params: json!({"lr": 0.1}),
        pipeline_names: vec!["__default__".into()],
        filters: json!({}),
        load_versions: BTreeMap::new(),
        saved_versions: BTreeMap::new(),
        start_time: None,
        end_time: None,
        duration_ms: None,
        error: None,
        attempts: 0,
        node_timings: vec![],
        process_peak_rss_bytes: None,
        validation: None,
        metrics: BTreeMap::new(),
        outputs: Default::default(),
        pending_input: None,
        owner: None,
        updated_at: None,
    }
}

fn item(session: &str, i: u32, max_attempts: u32) -> QueueItem {
    QueueItem {
        run: run(session, &run_id(i)),
        spec: json!({"runtime_params": {"i": i}}),
        max_attempts,
    }
}

/// The run's record finished as `status`, as a worker would write it.
fn finished(store_run: &RunRecord, status: RunStatus) -> RunRecord {
    let end = Timestamp::now();
    RunRecord {
        status,
        end_time: Some(end),
        ..store_run.clone()
    }
}

async fn get(store: &Store, run_id: &str) -> RunRecord {
    store.get_run(run_id).await.unwrap().unwrap()
}

const LEASE: Duration = Duration::from_secs(60);

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::target(super::Kind::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::target(super::Kind::Postgres).await).await
            }
        }
    };
}

// --------------------------------------------------------------- migration

/// The schema of version 1, as weft 0.1 created it.
const V1: &[&str] = &[
    "CREATE TABLE weft_schema (version BIGINT NOT NULL)",
    "CREATE TABLE weft_sessions (session_id TEXT PRIMARY KEY, created_us BIGINT NOT NULL, record TEXT NOT NULL)",
    "CREATE INDEX weft_sessions_created ON weft_sessions (created_us)",
    "CREATE TABLE weft_runs (run_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status TEXT NOT NULL,
        owner TEXT, start_us BIGINT, record TEXT NOT NULL)",
    "CREATE INDEX weft_runs_session ON weft_runs (session_id)",
    "CREATE INDEX weft_runs_status ON weft_runs (status)",
    "INSERT INTO weft_schema (version) VALUES (1)",
];

both!(a_v1_store_upgrades_in_place);
async fn a_v1_store_upgrades_in_place(t: Target) {
    let old = RunRecord {
        status: RunStatus::Succeeded,
        ..run("old", &run_id(1))
    };
    let record = serde_json::to_string(&old).unwrap().replace('\'', "''");
    let insert = format!(
        "INSERT INTO weft_runs (run_id, session_id, status, owner, start_us, record)
         VALUES ('{}', 'old', 'succeeded', NULL, NULL, '{record}')",
        old.run_id
    );
    let mut sqls = V1.to_vec();
    sqls.push(&insert);
    raw_exec(&t, &sqls).await;

    let store = Store::open(&t.url).await.unwrap();
    assert_eq!(raw_i64(&t, "SELECT MAX(version) FROM weft_schema").await, 2);
    assert_eq!(weft_store::SCHEMA_VERSION, 2);
    assert_eq!(get(&store, &old.run_id).await.status, RunStatus::Succeeded);
    // The new tables work.
    store
        .create_or_reuse_server_session(&session("s", Some("k")))
        .await
        .unwrap();
    let e = store.enqueue("s", &[item("s", 2, 1)], None).await.unwrap();
    assert_eq!(e.run_ids, vec![run_id(2)]);
    store.close().await.unwrap();
    // Reopening is a no-op.
    Store::open(&t.url).await.unwrap().close().await.unwrap();
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_schema").await, 2);
}

// ---------------------------------------------------------------- sessions

both!(server_sessions_are_reused_by_key_while_live);
async fn server_sessions_are_reused_by_key_while_live(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let a = session("a", Some("k"));
    let (got, created) = store.create_or_reuse_server_session(&a).await.unwrap();
    assert!(created);
    assert_eq!(got, a);
    // Same key, other id: the live one is returned and nothing inserted.
    let (got, created) = store
        .create_or_reuse_server_session(&session("b", Some("k")))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(got, a);
    assert!(store.get_server_session("b").await.unwrap().is_none());
    // Without a key, or with another one, a new session.
    assert!(
        store
            .create_or_reuse_server_session(&session("c", None))
            .await
            .unwrap()
            .1
    );
    assert!(
        store
            .create_or_reuse_server_session(&session("d", Some("k2")))
            .await
            .unwrap()
            .1
    );
    // A duplicate id is refused.
    let err = store
        .create_or_reuse_server_session(&session("c", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateSession { ref session_id, .. } if session_id == "c"),
        "{err:?}"
    );

    // Closing frees the key.
    let mut closed = a.clone();
    closed.state = "closed".into();
    closed.reason = Some(json!({"code": "idle_timeout"}));
    closed.closed_at = Some(Timestamp::now());
    store.update_server_session(&closed).await.unwrap();
    assert_eq!(store.get_server_session("a").await.unwrap().unwrap(), closed);
    let (got, created) = store
        .create_or_reuse_server_session(&session("e", Some("k")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(got.session_id, "e");

    let all: Vec<String> = store
        .list_server_sessions(false)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(all, ["a", "c", "d", "e"]);
    let live: Vec<String> = store
        .list_server_sessions(true)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(live, ["c", "d", "e"]);

    let err = store
        .update_server_session(&session("nope", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SessionNotFound { ref session_id, .. } if session_id == "nope"),
        "{err:?}"
    );
    store.close().await.unwrap();
}

both!(concurrent_creates_with_one_key_yield_one_session);
async fn concurrent_creates_with_one_key_yield_one_session(t: Target) {
    // Two handles: two pools and writers, as two processes would have.
    let first = Store::open(&t.url).await.unwrap();
    let second = Store::open(&t.url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .create_or_reuse_server_session(&session(&format!("s{i}"), Some("shared")))
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (s, c) = t.await.unwrap();
        ids.insert(s.session_id);
        created += usize::from(c);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_server_sessions").await, 1);
    first.close().await.unwrap();
    second.close().await.unwrap();
}

// ------------------------------------------------------------------- queue

both!(enqueue_claim_complete_in_fifo_order);
async fn enqueue_claim_complete_in_fifo_order(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    store
        .create_or_reuse_server_session(&session("s", None))
        .await
        .unwrap();
    let items: Vec<QueueItem> = (1..=5).map(|i| item("s", i, 1)).collect();
    let enqueued_from = jiff::Timestamp::now();
    let e = store.enqueue("s", &items, None).await.unwrap();
    let enqueued_until = jiff::Timestamp::now();
    assert_eq!(e.run_ids, (1..=5).map(run_id).collect::<Vec<_>>());
    assert!(!e.replayed);
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 5,
            leased: 0,
            waiting: 0
        }
    );
    for id in &e.run_ids {
        let r = get(&store, id).await;
        assert_eq!(r.status, RunStatus::Queued);
        assert_eq!(r.session_id, "s");
    }

    // max_concurrency 2: two leased, whatever `max` asks.
    let c = store.claim("s", "w1", 10, 2, LEASE).await.unwrap();
    // Each claim carries its enqueue time (dispatch latency), set by enqueue.
    for claim in &c {
        assert!(
            claim.enqueued_at >= enqueued_from && claim.enqueued_at <= enqueued_until,
            "{claim:?}"
        );
    }
    let enqueued_at = c.first().map(|x| x.enqueued_at).unwrap();
    assert_eq!(
        c,
        vec![
            Claimed {
                run_id: run_id(1),
                session_id: "s".into(),
                spec: json!({"runtime_params": {"i": 1}}),
                attempt: 1,
                enqueued_at,
            },
            Claimed {
                run_id: run_id(2),
                session_id: "s".into(),
                spec: json!({"runtime_params": {"i": 2}}),
                attempt: 1,
                enqueued_at: c[1].enqueued_at,
            },
        ]
    );
    // Another owner counts against the same limit.
    assert!(store.claim("s", "w2", 10, 2, LEASE).await.unwrap().is_empty());
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 3,
            leased: 2,
            waiting: 0
        }
    );
    let r1 = get(&store, &run_id(1)).await;
    assert_eq!(r1.status, RunStatus::Running);
    assert_eq!(r1.owner.as_deref(), Some("w1"));
    assert_eq!(r1.attempts, 1);
    assert!(r1.start_time.is_some());

    // Only the lease holder completes, with a terminal status.
    assert!(
        !store
            .complete("w2", &finished(&r1, RunStatus::Succeeded))
            .await
            .unwrap()
    );
    let err = store
        .complete("w1", &finished(&r1, RunStatus::Running))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err:?}");
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Running);
    assert!(
        store
            .complete("w1", &finished(&r1, RunStatus::Succeeded))
            .await
            .unwrap()
    );
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Succeeded);
    // Twice: no.
    assert!(
        !store
            .complete("w1", &finished(&r1, RunStatus::Failed))
            .await
            .unwrap()
    );
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Succeeded);

    // One slot free: the next in line.
    let c = store.claim("s", "w2", 10, 2, LEASE).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.run_id.clone()).collect::<Vec<_>>(),
        [run_id(3)]
    );
    // `max` bounds too.
    let r2 = get(&store, &run_id(2)).await;
    assert!(
        store
            .complete("w1", &finished(&r2, RunStatus::Failed))
            .await
            .unwrap()
    );
    let c = store.claim("s", "w2", 1, 5, LEASE).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.run_id.clone()).collect::<Vec<_>>(),
        [run_id(4)]
    );
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 1,
            leased: 2,
            waiting: 0
        }
    );
    // Another session's queue is separate.
    assert!(
        store
            .claim("other", "w1", 10, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.queue_counts("other").await.unwrap(), QueueCounts::default());
    store.close().await.unwrap();
}

both!(a_repeated_idempotency_key_replays_the_first_dispatch);
async fn a_repeated_idempotency_key_replays_the_first_dispatch(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let first = store
        .enqueue("s", &[item("s", 1, 1), item("s", 2, 1)], Some("key-1"))
        .await
        .unwrap();
    assert!(!first.replayed);
    // The retry carries new run ids (a client cannot know the first ones).
    let again = store
        .enqueue("s", &[item("s", 3, 1), item("s", 4, 1)], Some("key-1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.run_ids, first.run_ids);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_runs").await, 2);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_queue").await, 2);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_idempotency").await, 1);
    // The key is per session.
    let other = store
        .enqueue("s2", &[item("s2", 5, 1)], Some("key-1"))
        .await
        .unwrap();
    assert!(!other.replayed);
    assert_eq!(other.run_ids, [run_id(5)]);

    // Concurrent retries with one key: one dispatch.
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enqueue("s3", &[item("s3", 100 + i, 1)], Some("burst"))
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let e = t.await.unwrap();
        fresh += usize::from(!e.replayed);
        ids.insert(e.run_ids);
    }
    assert_eq!((ids.len(), fresh), (1, 1));
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_queue WHERE session_id = 's3'").await,
        1
    );
    store.close().await.unwrap();
}

both!(a_duplicate_run_id_writes_nothing);
async fn a_duplicate_run_id_writes_nothing(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    store.enqueue("s", &[item("s", 1, 1)], None).await.unwrap();
    // Recorded already (the second item), with a key: nothing written, the
    // key not taken.
    let err = store
        .enqueue("s", &[item("s", 2, 1), item("s", 1, 1)], Some("k"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateRun { ref run_id, .. } if *run_id == self::run_id(1)),
        "{err:?}"
    );
    // Twice in one call.
    let err = store
        .enqueue("s", &[item("s", 3, 1), item("s", 3, 1)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateRun { ref run_id, .. } if *run_id == self::run_id(3)),
        "{err:?}"
    );
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_runs").await, 1);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_queue").await, 1);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_idempotency").await, 0);
    // The key is still free.
    let e = store.enqueue("s", &[item("s", 2, 1)], Some("k")).await.unwrap();
    assert!(!e.replayed);
    // A run recorded outside the queue (weft run) is a duplicate too.
    store.insert_run(&run("x", &run_id(9))).await.unwrap();
    let err = store.enqueue("s", &[item("s", 9, 1)], None).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateRun { .. }), "{err:?}");
    store.close().await.unwrap();
}

both!(every_run_completes_exactly_once_with_four_claimers);
async fn every_run_completes_exactly_once_with_four_claimers(t: Target) {
    // Two handles (two writers, as two processes would have).
    const RUNS: u32 = 200;
    let first = Store::open(&t.url).await.unwrap();
    let second = Store::open(&t.url).await.unwrap();
    first
        .create_or_reuse_server_session(&session("s", None))
        .await
        .unwrap();
    let items: Vec<QueueItem> = (0..RUNS).map(|i| item("s", i, 3)).collect();
    first.enqueue("s", &items, None).await.unwrap();
    let completions: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = if w % 2 == 0 { first.clone() } else { second.clone() };
        let completions = completions.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut order = Vec::new();
            loop {
                let claimed = store.claim("s", &owner, 3, 8, LEASE).await.unwrap();
                if claimed.is_empty() {
                    if store.queue_counts("s").await.unwrap().queued == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for c in claimed {
                    assert_eq!(c.attempt, 1);
                    order.push(c.run_id.clone());
                    let r = store.get_run(&c.run_id).await.unwrap().unwrap();
                    assert_eq!(r.status, RunStatus::Running);
                    assert!(
                        store
                            .complete(&owner, &finished(&r, RunStatus::Succeeded))
                            .await
                            .unwrap()
                    );
                    // A second completion is refused.
                    assert!(
                        !store
                            .complete(&owner, &finished(&r, RunStatus::Failed))
                            .await
                            .unwrap()
                    );
                    *completions.lock().unwrap().entry(c.run_id).or_default() += 1;
                }
            }
            order
        }));
    }
    for t in tasks {
        let order = t.await.unwrap();
        // FIFO: each claimer gets runs in dispatch order.
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }
    let completions = completions.lock().unwrap().clone();
    assert_eq!(completions.len(), RUNS as usize);
    assert!(completions.values().all(|n| *n == 1));
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_runs WHERE status = 'succeeded'").await,
        i64::from(RUNS)
    );
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_queue WHERE state = 'done'").await,
        i64::from(RUNS)
    );
    first.close().await.unwrap();
    second.close().await.unwrap();
}

both!(expired_leases_requeue_until_attempts_run_out);
async fn expired_leases_requeue_until_attempts_run_out(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    store
        .enqueue("s", &[item("s", 1, 2), item("s", 2, 1)], None)
        .await
        .unwrap();
    let lease = Duration::from_secs(5);
    let c = store.claim("s", "old", 1, 4, lease).await.unwrap();
    assert_eq!(c[0].run_id, run_id(1));
    // Not expired yet.
    assert!(store.expire_leases(Timestamp::now()).await.unwrap().is_empty());
    let later = Timestamp::now() + SignedDuration::from_secs(60);
    let e = store.expire_leases(later).await.unwrap();
    assert_eq!(
        e,
        vec![weft_store::ExpiredLease {
            run_id: run_id(1),
            session_id: "s".into(),
            requeued: true
        }]
    );
    let r = get(&store, &run_id(1)).await;
    assert_eq!(r.status, RunStatus::Queued);
    assert_eq!(r.owner, None);
    assert_eq!(r.error.as_ref().map(|e| e.kind.as_str()), Some("interrupted"));
    // The old owner lost it.
    let running = RunRecord {
        status: RunStatus::Running,
        ..r.clone()
    };
    assert!(
        !store
            .complete("old", &finished(&running, RunStatus::Succeeded))
            .await
            .unwrap()
    );
    assert_eq!(
        store.renew_leases("old", &[run_id(1)], lease).await.unwrap(),
        [run_id(1)]
    );
    // It kept its place: claimed before run 2, as attempt 2.
    let c = store.claim("s", "new", 1, 4, lease).await.unwrap();
    assert_eq!((c[0].run_id.clone(), c[0].attempt), (run_id(1), 2));
    assert_eq!(get(&store, &run_id(1)).await.attempts, 2);
    assert!(get(&store, &run_id(1)).await.error.is_none());
    let progress_at = get(&store, &run_id(1)).await.updated_at.unwrap();
    let e = store
        .expire_leases(Timestamp::now() + SignedDuration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(e.len(), 1);
    assert!(!e[0].requeued);
    let r = get(&store, &run_id(1)).await;
    assert_eq!(r.status, RunStatus::Interrupted);
    assert_eq!(r.end_time, Some(progress_at));
    assert!(r.duration_ms.is_some());
    assert!(
        !store
            .complete("new", &finished(&running, RunStatus::Succeeded))
            .await
            .unwrap()
    );
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Interrupted);
    // Only run 2 is left.
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 1,
            leased: 0,
            waiting: 0
        }
    );
    let c = store.claim("s", "new", 5, 4, lease).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.run_id.clone()).collect::<Vec<_>>(),
        [run_id(2)]
    );
    // Renewing keeps a lease alive past its first expiry.
    assert!(
        store
            .renew_leases("new", &[run_id(2)], Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .expire_leases(Timestamp::now() + SignedDuration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .renew_leases("someone-else", &[run_id(2)], lease)
            .await
            .unwrap(),
        [run_id(2)]
    );
    store.close().await.unwrap();
}

both!(released_leases_go_back_to_the_queue_uncounted);
async fn released_leases_go_back_to_the_queue_uncounted(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    store
        .enqueue("s", &[item("s", 1, 1), item("s", 2, 1), item("s", 3, 1)], None)
        .await
        .unwrap();
    store.claim("s", "a", 2, 4, LEASE).await.unwrap();
    store.claim("s", "b", 1, 4, LEASE).await.unwrap();
    assert_eq!(store.release_leases("a").await.unwrap(), 2);
    assert_eq!(store.release_leases("a").await.unwrap(), 0);
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 2,
            leased: 1,
            waiting: 0
        }
    );
    for i in [1, 2] {
        let r = get(&store, &run_id(i)).await;
        assert_eq!((r.status, r.owner, r.attempts), (RunStatus::Queued, None, 0));
    }
    assert_eq!(get(&store, &run_id(3)).await.status, RunStatus::Running);
    // Claimed again as a first attempt (max_attempts 1 still allows it).
    let c = store.claim("s", "c", 5, 4, LEASE).await.unwrap();
    assert_eq!(
        c.iter()
            .map(|c| (c.run_id.clone(), c.attempt))
            .collect::<Vec<_>>(),
        [(run_id(1), 1), (run_id(2), 1)]
    );
    store.close().await.unwrap();
}

both!(queued_runs_can_be_cancelled_until_claimed);
async fn queued_runs_can_be_cancelled_until_claimed(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let items: Vec<QueueItem> = (1..=4).map(|i| item("s", i, 1)).collect();
    store.enqueue("s", &items, None).await.unwrap();
    store.enqueue("t", &[item("t", 9, 1)], None).await.unwrap();
    store.claim("s", "w", 1, 4, LEASE).await.unwrap();
    // Leased: not cancellable here.
    assert!(!store.cancel_queued(&run_id(1)).await.unwrap());
    assert!(store.cancel_queued(&run_id(2)).await.unwrap());
    assert!(!store.cancel_queued(&run_id(2)).await.unwrap());
    assert!(!store.cancel_queued("unknown").await.unwrap());
    let r = get(&store, &run_id(2)).await;
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(r.end_time.is_some());
    assert_eq!(
        store.cancel_session_queue("s").await.unwrap(),
        [run_id(3), run_id(4)]
    );
    assert!(store.cancel_session_queue("s").await.unwrap().is_empty());
    for i in [3, 4] {
        assert_eq!(get(&store, &run_id(i)).await.status, RunStatus::Cancelled);
    }
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Running);
    assert_eq!(get(&store, &run_id(9)).await.status, RunStatus::Queued);
    assert_eq!(
        store.run_status_counts("s").await.unwrap(),
        BTreeMap::from([(RunStatus::Running, 1), (RunStatus::Cancelled, 3)])
    );
    assert!(store.run_status_counts("nobody").await.unwrap().is_empty());
    assert!(store.claim("s", "w", 5, 5, LEASE).await.unwrap().is_empty());
    assert_eq!(
        store.queue_counts("s").await.unwrap(),
        QueueCounts {
            queued: 0,
            leased: 1,
            waiting: 0
        }
    );
    store.close().await.unwrap();
}

both!(sessions_with_queued_runs_are_live_ones_oldest_waiting_first);
async fn sessions_with_queued_runs_are_live_ones_oldest_waiting_first(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    for id in ["a", "b", "c"] {
        store
            .create_or_reuse_server_session(&session(id, None))
            .await
            .unwrap();
    }
    assert!(store.sessions_with_queued_runs().await.unwrap().is_empty());
    store.enqueue("b", &[item("b", 1, 1)], None).await.unwrap();
    store.enqueue("a", &[item("a", 2, 1)], None).await.unwrap();
    store.enqueue("c", &[item("c", 3, 1)], None).await.unwrap();
    store.enqueue("b", &[item("b", 4, 1)], None).await.unwrap();
    // A session the store has no record of is not scheduled.
    store
        .enqueue("ghost", &[item("ghost", 5, 1)], None)
        .await
        .unwrap();
    assert_eq!(store.sessions_with_queued_runs().await.unwrap(), ["b", "a", "c"]);
    let mut c = store.get_server_session("c").await.unwrap().unwrap();
    c.state = "expired".into();
    store.update_server_session(&c).await.unwrap();
    store.claim("b", "w", 1, 1, LEASE).await.unwrap();
    // b still has run 4 queued (its oldest queued run is now 4).
    assert_eq!(store.sessions_with_queued_runs().await.unwrap(), ["a", "b"]);
    store.close().await.unwrap();
}

both!(the_orphan_sweep_leaves_the_queue_alone);
async fn the_orphan_sweep_leaves_the_queue_alone(t: Target) {
    let host = weft_store::current_owner()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        format!("{host}:{pid}")
    };
    let store = Store::open(&t.url).await.unwrap();
    let mut queued = item("s", 1, 1);
    queued.run.owner = Some(dead.clone());
    store
        .enqueue("s", &[queued, item("s", 2, 1)], None)
        .await
        .unwrap();
    // Leased by a process that died.
    store.claim("s", &dead, 1, 4, LEASE).await.unwrap();
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Running);
    assert!(store.mark_orphans_interrupted().await.unwrap().is_empty());
    store.close().await.unwrap();
    let store = Store::open(&t.url).await.unwrap();
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Running);
    assert_eq!(get(&store, &run_id(2)).await.status, RunStatus::Queued);
    // The lease expiry handles it.
    let e = store
        .expire_leases(Timestamp::now() + SignedDuration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Interrupted);
    store.close().await.unwrap();
}

both!(progress_after_a_reclaim_starts_from_the_new_attempt);
async fn progress_after_a_reclaim_starts_from_the_new_attempt(t: Target) {
    // The writer caches running records for progress updates: a lease that
    // expired and was claimed again must not bring the old attempt back;
    // a new attempt starts with no node timings.
    let store = Store::open(&t.url).await.unwrap();
    store.enqueue("s", &[item("s", 1, 2)], None).await.unwrap();
    store.claim("s", "old", 1, 1, LEASE).await.unwrap();
    let mut r = get(&store, &run_id(1)).await;
    r.node_timings.push(weft_store::NodeTiming {
        node: "first".into(),
        start: Timestamp::now(),
        duration_ms: 1.0,
        peak_memory_bytes: None,
        rows_in: None,
        rows_out: None,
        cycle: None,
    });
    store.update_run(&r).await.unwrap();
    store
        .expire_leases(Timestamp::now() + SignedDuration::from_secs(3600))
        .await
        .unwrap();
    store.claim("s", "new", 1, 1, LEASE).await.unwrap();
    store
        .update_progress(
            &run_id(1),
            weft_store::NodeTiming {
                node: "again".into(),
                start: Timestamp::now(),
                duration_ms: 1.0,
                peak_memory_bytes: None,
                rows_in: None,
                rows_out: None,
                cycle: None,
            },
        )
        .unwrap();
    store.flush().await.unwrap();
    let r = get(&store, &run_id(1)).await;
    assert_eq!(r.attempts, 2);
    assert_eq!(r.owner.as_deref(), Some("new"));
    assert_eq!(
        r.node_timings.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(),
        ["again"]
    );
    store.close().await.unwrap();
}

both!(concurrent_dispatches_are_decided_one_by_one);
async fn concurrent_dispatches_are_decided_one_by_one(t: Target) {
    // On SQLite concurrent enqueues share a group and are written with a
    // few statements: each must still be decided as if alone.
    let store = Store::open(&t.url).await.unwrap();
    store
        .enqueue("s", &[item("s", 0, 1)], Some("old-key"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..48u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every 4th reuses run id 1000 (one of them wins), every 6th
            // carries the key seen before, every 5th a key shared by its
            // group of 5.
            let id = if i % 4 == 0 { 1000 } else { 1 + i };
            let key = if i % 6 == 0 {
                Some("old-key".to_string())
            } else if i % 5 == 0 {
                Some("shared".to_string())
            } else {
                None
            };
            let r = store.enqueue("s", &[item("s", id, 1)], key.as_deref()).await;
            (i, r)
        }));
    }
    let mut accepted = HashSet::new();
    let mut shared = HashSet::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r {
            Ok(e) if i % 6 == 0 => {
                assert!(e.replayed);
                assert_eq!(e.run_ids, [run_id(0)]);
            }
            Ok(e) => {
                if i % 5 == 0 {
                    shared.insert(e.run_ids.clone());
                }
                if !e.replayed {
                    assert!(accepted.insert(e.run_ids[0].clone()), "{e:?}");
                }
            }
            Err(StoreError::DuplicateRun { run_id: id, .. }) => assert_eq!(id, run_id(1000)),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(shared.len(), 1, "{shared:?}");
    // Stored: what was accepted, each once, all queued, no gaps in FIFO.
    let queued = raw_i64(&t, "SELECT COUNT(*) FROM weft_queue").await;
    assert_eq!(queued, accepted.len() as i64 + 1);
    assert_eq!(raw_i64(&t, "SELECT COUNT(*) FROM weft_runs").await, queued);
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(DISTINCT seq) FROM weft_queue").await,
        queued
    );
    assert!(accepted.contains(&run_id(1000)));
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_idempotency").await,
        2,
        "old-key and shared"
    );
    store.close().await.unwrap();
}

both!(leases_of_dead_local_processes_expire_at_once);
async fn leases_of_dead_local_processes_expire_at_once(t: Target) {
    let host = weft_store::current_owner()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let store = Store::open(&t.url).await.unwrap();
    let items: Vec<QueueItem> = (1..=4).map(|i| item("s", i, 2)).collect();
    store.enqueue("s", &items, None).await.unwrap();
    let dead = format!("{host}:{dead_pid}/worker-1");
    let alive = format!("{}/worker-2", weft_store::current_owner());
    store.claim("s", &dead, 1, 10, LEASE).await.unwrap();
    store.claim("s", &alive, 1, 10, LEASE).await.unwrap();
    store.claim("s", "other-host:1", 1, 10, LEASE).await.unwrap();
    store.claim("s", "not-a-process", 1, 10, LEASE).await.unwrap();
    let e = store.expire_leases_of_dead_owners().await.unwrap();
    assert_eq!(
        e,
        vec![weft_store::ExpiredLease {
            run_id: run_id(1),
            session_id: "s".into(),
            requeued: true
        }]
    );
    assert_eq!(get(&store, &run_id(1)).await.status, RunStatus::Queued);
    for i in 2..=4 {
        assert_eq!(get(&store, &run_id(i)).await.status, RunStatus::Running);
    }
    assert!(store.expire_leases_of_dead_owners().await.unwrap().is_empty());
    store.close().await.unwrap();
}

both!(a_large_dispatch_is_written_whole_and_in_order);
async fn a_large_dispatch_is_written_whole_and_in_order(t: Target) {
    // More rows than one statement may bind parameters for.
    const RUNS: u32 = 3_500;
    let store = Store::open(&t.url).await.unwrap();
    let items: Vec<QueueItem> = (0..RUNS).map(|i| item("s", i, 1)).collect();
    let e = store.enqueue("s", &items, Some("big")).await.unwrap();
    assert_eq!(e.run_ids.len(), RUNS as usize);
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_runs").await,
        i64::from(RUNS)
    );
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(DISTINCT seq) FROM weft_queue").await,
        i64::from(RUNS)
    );
    let again = store.enqueue("s", &items[..1], Some("big")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.run_ids.len(), RUNS as usize);
    let c = store.claim("s", "w", 3, 10, LEASE).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.run_id.clone()).collect::<Vec<_>>(),
        [run_id(0), run_id(1), run_id(2)]
    );
    store.close().await.unwrap();
}

both!(the_concurrency_limit_holds_across_handles);
async fn the_concurrency_limit_holds_across_handles(t: Target) {
    const LIMIT: u32 = 3;
    const RUNS: u32 = 60;
    let first = Store::open(&t.url).await.unwrap();
    let second = Store::open(&t.url).await.unwrap();
    let items: Vec<QueueItem> = (0..RUNS).map(|i| item("s", i, 1)).collect();
    first.enqueue("s", &items, None).await.unwrap();
    let holding = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = if w % 2 == 0 { first.clone() } else { second.clone() };
        let (holding, peak) = (holding.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut done = 0;
            loop {
                let claimed = store.claim("s", &owner, 2, LIMIT, LEASE).await.unwrap();
                if claimed.is_empty() {
                    let counts = store.queue_counts("s").await.unwrap();
                    assert!(counts.leased <= u64::from(LIMIT), "{counts:?}");
                    if counts.queued == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let now = holding.fetch_add(claimed.len() as u32, std::sync::atomic::Ordering::SeqCst)
                    + claimed.len() as u32;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                assert!(now <= LIMIT, "{now} runs held at once");
                tokio::task::yield_now().await;
                for c in claimed {
                    let r = store.get_run(&c.run_id).await.unwrap().unwrap();
                    holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    assert!(
                        store
                            .complete(&owner, &finished(&r, RunStatus::Succeeded))
                            .await
                            .unwrap()
                    );
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, RUNS);
    assert!(peak.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    first.close().await.unwrap();
    second.close().await.unwrap();
}
