//! One suite, both backends. PostgreSQL tests need a real server: run them
//! through `scripts/with-postgres.sh cargo nextest run -p weft-store`
//! (they fail, never skip, when `WEFT_TEST_POSTGRES_URL` is unset). Each
//! PostgreSQL test works in its own schema, so tests run in parallel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Row};
use weft_store::{
    BlockingStore, Fault, NodeTiming, RunErrorRecord, RunFilter, RunRecord, RunStatus, SessionRecord, Store,
    StoreError,
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
            let file = dir.path().join("sub").join("weft.db");
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

fn target_blocking(kind: Kind) -> Target {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(target(kind))
}

/// Runs raw SQL on the target, bypassing the store (to tamper or inspect).
async fn raw_exec(t: &Target, sql: &str) {
    match t.file {
        Some(ref f) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.display()))
                .await
                .unwrap();
            sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
        None => {
            let mut c = sqlx::PgConnection::connect(&t.url).await.unwrap();
            sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
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

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn session(id: &str, created: &str) -> SessionRecord {
    SessionRecord {
        session_id: id.into(),
        kind: "service".into(),
        project_path: "/tmp/project".into(),
        env: "local".into(),
        runtime_params: json!({"a": 1}),
        created_at: ts(created),
        closed_at: None,
        username: Some("ada".into()),
        git_commit: Some("abc123".into()),
        git_dirty: Some(false),
        command: vec!["weft".into(), "run".into()],
    }
}

fn run(session: &str, id: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        session_id: session.into(),
        run_index: 0,
        status,
        env: "local".into(),
        runtime_params: json!({"lr": 0.1}),
        pipeline_names: vec!["__default__".into()],
        filters: json!({"tags": ["a"]}),
        load_versions: BTreeMap::new(),
        saved_versions: BTreeMap::new(),
        start_time: Some(Timestamp::now()),
        end_time: None,
        duration_ms: None,
        error: None,
        attempts: 1,
        node_timings: vec![],
        process_peak_rss_bytes: None,
        validation: None,
        metrics: BTreeMap::new(),
        outputs: Default::default(),
        pending_input: None,
        owner: Some(weft_store::current_owner()),
        updated_at: None,
    }
}

/// Metrics from a JSON object of numbers.
fn metrics(v: serde_json::Value) -> BTreeMap<String, f64> {
    weft_store::metrics_from_json(&v)
}

fn run_id(i: u32) -> String {
    format!(
        "2026-01-01T00.00.{:02}.{:06}Z-{:08x}",
        i / 1_000_000,
        i % 1_000_000,
        i
    )
}

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

macro_rules! both_blocking {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Kind::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name(super::Kind::Postgres)
            }
        }
    };
}

// ---------------------------------------------------------------- sessions

both!(sessions_roundtrip_and_order);
async fn sessions_roundtrip_and_order(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    // Ids sort the other way round from creation times, and the
    // fractional seconds differ in length: order must follow time.
    store
        .create_session(&session("c", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .create_session(&session("b", "2026-01-01T00:00:00.5Z"))
        .await
        .unwrap();
    store
        .create_session(&session("a", "2026-01-02T00:00:00Z"))
        .await
        .unwrap();
    let ids: Vec<String> = store
        .list_sessions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(store.list_sessions(Some(1)).await.unwrap().len(), 1);

    let err = store
        .create_session(&session("a", "2026-01-03T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateSession { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::User);

    let at = ts("2026-01-02T01:00:00Z");
    store.close_session("a", at).await.unwrap();
    let mut expected = session("a", "2026-01-02T00:00:00Z");
    expected.closed_at = Some(at);
    assert_eq!(store.get_session("a").await.unwrap(), Some(expected));
    assert_eq!(store.get_session("zzz").await.unwrap(), None);
    let err = store.close_session("zzz", at).await.unwrap_err();
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err}");
    assert!(err.to_string().contains("zzz"), "{err}");
}

// -------------------------------------------------------------------- runs

both!(runs_roundtrip_and_duplicates);
async fn runs_roundtrip_and_duplicates(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let mut r = run("s", &run_id(1), RunStatus::Failed);
    r.load_versions = BTreeMap::from([("raw".into(), "2026-01-01T00.00.00.000Z".into())]);
    r.saved_versions = BTreeMap::from([("model".into(), r.run_id.clone())]);
    r.end_time = Some(Timestamp::now());
    r.duration_ms = Some(12.5);
    r.error = Some(RunErrorRecord {
        kind: "node".into(),
        message: "node `train` failed".into(),
        node: Some("train".into()),
        causes: vec!["node `train` failed".into(), "division by zero".into()],
    });
    r.node_timings = vec![NodeTiming {
        node: "train".into(),
        start: Timestamp::now(),
        duration_ms: 3.25,
        peak_memory_bytes: Some(1 << 20),
        rows_in: Some(10),
        rows_out: Some(4),
        cycle: None,
    }];
    r.process_peak_rss_bytes = Some(42);
    r.validation = Some(weft_core::ValidationStats {
        validations: 1,
        connections: 3,
        problems: 1,
        duration_ms: 0.25,
    });
    r.metrics = metrics(json!({"r2": 0.5, "nested.x": 1.25}));
    store.insert_run(&r).await.unwrap();
    let stored = store.get_run(&r.run_id).await.unwrap().unwrap();
    assert!(stored.updated_at.is_some(), "the store stamps every write");
    assert_eq!(
        stored,
        RunRecord {
            updated_at: stored.updated_at,
            ..r.clone()
        }
    );
    assert_eq!(store.get_run("nope").await.unwrap(), None);

    // A caller-supplied id that exists is refused, and the stored row is
    // untouched, whatever the new record says.
    let mut other = run("other-session", &r.run_id, RunStatus::Queued);
    other.runtime_params = json!({"lr": 99});
    for attempt in [&r, &other] {
        let err = store.insert_run(attempt).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::DuplicateRun { run_id, .. } if *run_id == r.run_id),
            "{err:?}"
        );
        assert_eq!(err.fault(), Fault::User);
        assert!(err.to_string().contains(&r.run_id), "{err}");
        assert_eq!(store.get_run(&r.run_id).await.unwrap().as_ref(), Some(&stored));
    }
    // Also when the duplicate is in a batch (named), or twice in one batch.
    let err = store
        .insert_runs(&[run("s", &run_id(9), RunStatus::Queued), other.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateRun { run_id, .. } if *run_id == r.run_id),
        "{err:?}"
    );
    let twice = run("s", &run_id(8), RunStatus::Queued);
    let err = store
        .insert_runs(&[twice.clone(), twice.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateRun { run_id, .. } if *run_id == twice.run_id),
        "{err:?}"
    );
    assert_eq!(store.get_run(&run_id(9)).await.unwrap(), None);
    assert_eq!(store.get_run(&run_id(8)).await.unwrap(), None);
    assert_eq!(store.get_run(&r.run_id).await.unwrap(), Some(stored));

    // A batch with a duplicate inside records nothing.
    let batch = vec![
        run("s", &run_id(2), RunStatus::Queued),
        run("s", &run_id(1), RunStatus::Queued),
        run("s", &run_id(3), RunStatus::Queued),
    ];
    assert!(store.insert_runs(&batch).await.is_err());
    assert_eq!(store.get_run(&run_id(2)).await.unwrap(), None);
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap().len(), 1);
    store.insert_runs(&batch[..1]).await.unwrap();
    store.insert_runs(&[]).await.unwrap();
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_schemes_are_refused() {
    // Before: `mysql://...` was taken for a SQLite path (creating `mysql:/`).
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    for (url, scheme) in [
        ("mysql://weft:secret@db.example:3306/weft", "mysql"),
        ("foo:bar", "foo"),
        ("http://example.com/weft.db", "http"),
        ("Sqlite3:x.db", "Sqlite3"),
    ] {
        let err = match Store::open(url).await {
            Ok(_) => panic!("{url} was opened"),
            Err(e) => e,
        };
        match &err {
            StoreError::UnsupportedUrl { scheme: found, .. } => assert_eq!(found, scheme),
            other => panic!("{url}: {other:?}"),
        }
        assert_eq!(err.fault(), Fault::User);
        let msg = err.to_string();
        for form in ["sqlite://", "postgres://", "postgresql://", "file path"] {
            assert!(msg.contains(form), "{form} missing: {msg}");
        }
        assert!(!msg.contains("secret"), "password leaked: {msg}");
        assert!(!cwd.join(format!("{scheme}:")).exists(), "{url} created a folder");
    }
    // The accepted forms still open (a drive-letter-like or colon path
    // written `./` is a path).
    let path = dir.path().join("a:b.db");
    let s = Store::open(&path.display().to_string()).await.unwrap();
    s.close().await.unwrap();
    assert!(path.is_file());
}

both!(transitions_are_validated);
async fn transitions_are_validated(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let mut r = run("s", &run_id(1), RunStatus::Queued);
    store.insert_run(&r).await.unwrap();
    for next in [RunStatus::Running, RunStatus::Running, RunStatus::Succeeded] {
        r.status = next;
        store.update_run(&r).await.unwrap();
    }
    r.metrics = metrics(json!({"changed": 1}));
    for bad in [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Queued,
        RunStatus::Failed,
    ] {
        r.status = bad;
        let err = store.update_run(&r).await.unwrap_err();
        match &err {
            StoreError::InvalidTransition { run_id, from, to } => {
                assert_eq!(run_id, &r.run_id);
                assert_eq!(from, "succeeded");
                assert_eq!(to, bad.as_str());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.fault(), Fault::User);
    }
    let stored = store.get_run(&r.run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert!(stored.metrics.is_empty(), "a refused update changes nothing");

    let mut missing = run("s", "missing", RunStatus::Running);
    let err = store.update_run(&missing).await.unwrap_err();
    assert!(matches!(err, StoreError::RunNotFound { .. }), "{err:?}");
    missing.status = RunStatus::Queued;
    assert!(store.update_run(&missing).await.is_err());

    // Recovery: running → interrupted → running → failed → queued.
    let mut r2 = run("s", &run_id(2), RunStatus::Running);
    store.insert_run(&r2).await.unwrap();
    for next in [
        RunStatus::Interrupted,
        RunStatus::Running,
        RunStatus::Failed,
        RunStatus::Queued,
        RunStatus::Cancelled,
    ] {
        r2.status = next;
        store.update_run(&r2).await.unwrap();
    }
    // queued → skipped, but never running → skipped.
    let mut r3 = run("s", &run_id(3), RunStatus::Queued);
    store.insert_run(&r3).await.unwrap();
    r3.status = RunStatus::Skipped;
    store.update_run(&r3).await.unwrap();
    let mut r4 = run("s", &run_id(4), RunStatus::Running);
    store.insert_run(&r4).await.unwrap();
    r4.status = RunStatus::Skipped;
    assert!(matches!(
        store.update_run(&r4).await,
        Err(StoreError::InvalidTransition { .. })
    ));
}

both!(list_runs_filters_and_order);
async fn list_runs_filters_and_order(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..30u32 {
        let status = if i % 3 == 0 {
            RunStatus::Queued
        } else {
            RunStatus::Running
        };
        let mut r = run(if i % 2 == 0 { "even" } else { "odd" }, &run_id(i), status);
        r.run_index = i;
        batch.push(r);
    }
    // Insert out of order: listing must still be newest first.
    batch.reverse();
    batch.swap(3, 17);
    store.insert_runs(&batch).await.unwrap();
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    let idx: Vec<u32> = all.iter().map(|r| r.run_index).collect();
    assert_eq!(idx, (0..30).rev().collect::<Vec<_>>());
    let even = store
        .list_runs(&RunFilter {
            session_id: Some("even".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(even.len(), 15);
    assert!(even.iter().all(|r| r.session_id == "even"));
    let queued_odd = store
        .list_runs(&RunFilter {
            session_id: Some("odd".into()),
            status: Some(RunStatus::Queued),
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    let idx: Vec<u32> = queued_odd.iter().map(|r| r.run_index).collect();
    assert_eq!(idx, [27, 21, 15]);
    let none = store
        .list_runs(&RunFilter {
            session_id: Some("nobody".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

// ------------------------------------------------------- deferred writes

fn timing(node: &str, ms: f64) -> NodeTiming {
    NodeTiming {
        node: node.into(),
        start: Timestamp::now(),
        duration_ms: ms,
        peak_memory_bytes: None,
        rows_in: None,
        rows_out: None,
        cycle: None,
    }
}

both_blocking!(deferred_updates_are_committed_and_read_back);
fn deferred_updates_are_committed_and_read_back(kind: Kind) {
    let t = target_blocking(kind);
    let store = BlockingStore::open(&t.url).unwrap();
    let planned: Vec<RunRecord> = (0..20u32)
        .map(|i| RunRecord {
            run_index: i,
            start_time: None,
            ..run("multi", &run_id(i), RunStatus::Queued)
        })
        .collect();
    store.insert_runs(&planned).unwrap();
    for mut r in planned.clone() {
        r.status = RunStatus::Running;
        r.start_time = Some(Timestamp::now());
        store.update_run_deferred(&r).unwrap();
        store.update_progress(&r.run_id, timing("a", 1.0)).unwrap();
        store.update_progress(&r.run_id, timing("b", 2.0)).unwrap();
        if r.run_index % 2 == 0 {
            r.status = RunStatus::Succeeded;
            r.node_timings = vec![timing("a", 1.0), timing("b", 2.0), timing("c", 3.0)];
            r.metrics = metrics(json!({"score": r.run_index}));
            store.update_run_deferred(&r).unwrap();
        }
    }
    // Read-your-writes: a read through the handle sees the queued writes.
    let runs = store
        .list_runs(&RunFilter {
            session_id: Some("multi".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 20);
    for r in &runs {
        if r.run_index % 2 == 0 {
            assert_eq!(r.status, RunStatus::Succeeded, "{}", r.run_id);
            assert_eq!(r.node_timings.len(), 3, "the final record replaces the progress");
            assert_eq!(r.metrics["score"], f64::from(r.run_index));
        } else {
            assert_eq!(r.status, RunStatus::Running, "{}", r.run_id);
            let nodes: Vec<&str> = r.node_timings.iter().map(|t| t.node.as_str()).collect();
            assert_eq!(nodes, ["a", "b"], "progress appends node timings");
            assert!(r.updated_at.unwrap() >= r.start_time.unwrap());
        }
    }
    store.flush().unwrap();

    // Drop without flush or close: the queued writes are committed.
    let mut last = runs.iter().find(|r| r.run_index == 1).unwrap().clone();
    store.update_progress(&last.run_id, timing("c", 3.0)).unwrap();
    last.status = RunStatus::Failed;
    store.update_run_deferred(&last).unwrap();
    drop(store);
    let store = BlockingStore::open(&t.url).unwrap();
    let got = store.get_run(&last.run_id).unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Failed);

    // Progress of a run that is not running adds nothing and is no error.
    store.update_progress(&last.run_id, timing("late", 9.0)).unwrap();
    store.update_progress("no-such-run", timing("x", 1.0)).unwrap();
    store.flush().unwrap();
    assert_eq!(
        store.get_run(&last.run_id).unwrap().unwrap().node_timings,
        got.node_timings
    );

    // After close, writes are refused with a clear error.
    store.close().unwrap();
    let err = store.update_run_deferred(&got).unwrap_err();
    assert!(matches!(err, StoreError::Closed { .. }), "{err:?}");
    assert!(matches!(
        store.insert_run(&run("s", "new", RunStatus::Queued)),
        Err(StoreError::Closed { .. })
    ));
}

both_blocking!(refused_deferred_updates_are_reported_by_flush);
fn refused_deferred_updates_are_reported_by_flush(kind: Kind) {
    let t = target_blocking(kind);
    let store = BlockingStore::open(&t.url).unwrap();
    let mut done = run("s", &run_id(1), RunStatus::Succeeded);
    store.insert_run(&done).unwrap();
    done.status = RunStatus::Running; // succeeded → running is forbidden
    done.metrics = metrics(json!({"changed": 1}));
    store.update_run_deferred(&done).unwrap();
    store
        .update_run_deferred(&run("s", "missing", RunStatus::Running))
        .unwrap();
    // In-memory chain check: queued → succeeded within one group.
    let mut queued = run("s", &run_id(2), RunStatus::Queued);
    store.insert_run(&queued).unwrap();
    queued.status = RunStatus::Running;
    store.update_run_deferred(&queued).unwrap();
    queued.status = RunStatus::Queued; // running → queued is forbidden
    store.update_run_deferred(&queued).unwrap();
    let err = store.flush().unwrap_err();
    match &err {
        StoreError::Deferred { failed, first, .. } => {
            assert_eq!(*failed, 3, "{err}");
            assert!(
                matches!(&**first, StoreError::InvalidTransition { run_id, from, to }
                    if *run_id == done.run_id && from == "succeeded" && to == "running"),
                "{first:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.fault(), Fault::User);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the first failure is the source"
    );
    // Reported once; the refused write changed nothing.
    store.flush().unwrap();
    let stored = store.get_run(&done.run_id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert!(stored.metrics.is_empty());
    assert_eq!(
        store.get_run(&queued.run_id).unwrap().unwrap().status,
        RunStatus::Running,
        "the valid part of the chain is kept"
    );
}

both_blocking!(a_failed_group_fails_its_writes_and_the_writer_goes_on);
fn a_failed_group_fails_its_writes_and_the_writer_goes_on(kind: Kind) {
    let t = target_blocking(kind);
    let store = BlockingStore::open(&t.url).unwrap();
    let r = run("s", &run_id(1), RunStatus::Running);
    store.insert_run(&r).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(raw_exec(&t, "DROP TABLE weft_runs"));
    let mut done = r.clone();
    done.status = RunStatus::Succeeded;
    store.update_run_deferred(&done).unwrap();
    store.update_progress(&r.run_id, timing("n", 1.0)).unwrap();
    let err = store.flush().unwrap_err();
    match &err {
        StoreError::Deferred { first, .. } => {
            assert!(matches!(**first, StoreError::Database { .. }), "{first:?}")
        }
        other => panic!("{other:?}"),
    }
    let err = store.update_run(&done).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    let err = store
        .insert_runs(&[
            run("s", &run_id(2), RunStatus::Queued),
            run("s", &run_id(3), RunStatus::Queued),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    // The writer still serves the tables that exist.
    store
        .create_session(&session("after", "2026-01-01T00:00:00Z"))
        .unwrap();
    assert!(store.get_session("after").unwrap().is_some());
    store.flush().unwrap();
}

both_blocking!(threads_sharing_a_handle_mix_waited_and_deferred_writes);
fn threads_sharing_a_handle_mix_waited_and_deferred_writes(kind: Kind) {
    const THREADS: u32 = 4;
    const RUNS: u32 = 40;
    let t = target_blocking(kind);
    let store = Arc::new(BlockingStore::open(&t.url).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|th| {
            let store = store.clone();
            std::thread::spawn(move || {
                let planned: Vec<RunRecord> = (0..RUNS)
                    .map(|i| RunRecord {
                        run_index: th * 1000 + i,
                        ..run(&format!("t{th}"), &run_id(th * 1000 + i), RunStatus::Queued)
                    })
                    .collect();
                store.insert_runs(&planned).unwrap();
                for mut r in planned {
                    r.status = RunStatus::Running;
                    if r.run_index % 3 == 0 {
                        store.update_run(&r).unwrap();
                    } else {
                        store.update_run_deferred(&r).unwrap();
                    }
                    for k in 0..3 {
                        store
                            .update_progress(&r.run_id, timing(&format!("n{k}"), 1.0))
                            .unwrap();
                    }
                    if r.run_index % 5 == 0 {
                        // A read in the middle sees this thread's writes.
                        let got = store.get_run(&r.run_id).unwrap().unwrap();
                        assert_eq!(got.status, RunStatus::Running);
                        assert_eq!(got.node_timings.len(), 3);
                    }
                    r.status = if r.run_index % 2 == 0 {
                        RunStatus::Succeeded
                    } else {
                        RunStatus::Failed
                    };
                    r.node_timings = (0..3).map(|k| timing(&format!("n{k}"), 1.0)).collect();
                    r.metrics = metrics(json!({"i": r.run_index}));
                    store.update_run_deferred(&r).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    store.flush().unwrap();
    let all = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(all.len(), (THREADS * RUNS) as usize);
    for r in &all {
        let expected = if r.run_index % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        assert_eq!(r.status, expected, "{}", r.run_id);
        assert_eq!(r.metrics["i"], f64::from(r.run_index));
        assert_eq!(r.node_timings.len(), 3);
        assert!(r.updated_at.is_some());
    }
}

// ----------------------------------------------------------------- orphans

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

both!(orphans_become_interrupted);
async fn orphans_become_interrupted(t: Target) {
    let host = weft_store::current_owner()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let store = Store::open(&t.url).await.unwrap();
    let mine = run("s", &run_id(1), RunStatus::Running);
    let mut dead = run("s", &run_id(2), RunStatus::Running);
    dead.owner = Some(format!("{host}:{}", dead_pid()));
    let mut remote = run("s", &run_id(3), RunStatus::Running);
    remote.owner = Some("some-other-host:1".into());
    let mut dead_but_done = run("s", &run_id(4), RunStatus::Succeeded);
    dead_but_done.owner = dead.owner.clone();
    store
        .insert_runs(&[mine.clone(), dead.clone(), remote.clone(), dead_but_done])
        .await
        .unwrap();
    assert_eq!(
        store.mark_orphans_interrupted().await.unwrap(),
        vec![dead.run_id.clone()]
    );
    let got = store.get_run(&dead.run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Interrupted);
    assert!(got.end_time.is_some());
    assert_eq!(got.error.unwrap().kind, "interrupted");
    for r in [&mine, &remote] {
        assert_eq!(
            store.get_run(&r.run_id).await.unwrap().unwrap().status,
            RunStatus::Running
        );
    }
    assert!(store.mark_orphans_interrupted().await.unwrap().is_empty());

    // Opening the store recovers too.
    let mut dead2 = run("s", &run_id(5), RunStatus::Running);
    dead2.owner = dead.owner.clone();
    store.insert_run(&dead2).await.unwrap();
    store.close().await.unwrap();
    let store = Store::open(&t.url).await.unwrap();
    assert_eq!(
        store.get_run(&dead2.run_id).await.unwrap().unwrap().status,
        RunStatus::Interrupted
    );
}

both!(interrupted_runs_keep_their_last_progress);
async fn interrupted_runs_keep_their_last_progress(t: Target) {
    let host = weft_store::current_owner()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let dead = format!("{host}:{}", dead_pid());
    let store = Store::open(&t.url).await.unwrap();
    let mut running = run("s", &run_id(1), RunStatus::Running);
    running.owner = Some(dead.clone());
    let mut queued = run("s", &run_id(2), RunStatus::Queued);
    queued.owner = Some(dead.clone());
    queued.start_time = None;
    store
        .insert_runs(&[running.clone(), queued.clone()])
        .await
        .unwrap();
    store
        .update_progress(&running.run_id, timing("first", 5.0))
        .unwrap();
    store
        .update_progress(&running.run_id, timing("second", 7.0))
        .unwrap();
    store.flush().await.unwrap();
    let last_progress = store
        .get_run(&running.run_id)
        .await
        .unwrap()
        .unwrap()
        .updated_at
        .unwrap();
    let inserted = store
        .get_run(&queued.run_id)
        .await
        .unwrap()
        .unwrap()
        .updated_at
        .unwrap();
    // The next command reads the store a while later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swept_at = Timestamp::now();
    let mut ids = store.mark_orphans_interrupted().await.unwrap();
    ids.sort();
    assert_eq!(ids, [running.run_id.clone(), queued.run_id.clone()]);

    let got = store.get_run(&running.run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Interrupted);
    assert_eq!(
        got.end_time,
        Some(last_progress),
        "the end time is when it died, not {swept_at}"
    );
    let nodes: Vec<&str> = got.node_timings.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(nodes, ["first", "second"], "finished nodes keep their timings");
    let expected_ms =
        (last_progress.as_microsecond() - running.start_time.unwrap().as_microsecond()) as f64 / 1000.0;
    assert_eq!(got.duration_ms, Some(expected_ms));
    assert_eq!(got.error.unwrap().kind, "interrupted");

    // A planned run whose process died before it started is interrupted too.
    let got = store.get_run(&queued.run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Interrupted);
    assert_eq!(got.end_time, Some(inserted));
    assert_eq!(got.duration_ms, None);
}

both!(bad_rows_are_typed_errors_with_their_cause);
async fn bad_rows_are_typed_errors_with_their_cause(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let r = run("s", &run_id(1), RunStatus::Running);
    store.insert_run(&r).await.unwrap();
    raw_exec(&t, "UPDATE weft_runs SET record = '{\"run_id\": 5}'").await;
    let err = store.get_run(&r.run_id).await.unwrap_err();
    match &err {
        StoreError::Malformed { context, .. } => assert!(context.contains(&r.run_id), "{context}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.fault(), Fault::Internal);
    let source = std::error::Error::source(&err).expect("a typed source");
    assert!(
        source.downcast_ref::<Arc<serde_json::Error>>().is_some(),
        "{source:?}"
    );

    raw_exec(&t, "DROP TABLE weft_sessions").await;
    let err = store.list_sessions(None).await.unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("a typed source");
    assert!(source.downcast_ref::<Arc<sqlx::Error>>().is_some(), "{source:?}");
    assert!(err.to_string().contains("listing sessions"), "{err}");
}

// ----------------------------------------------------------------- schema

both!(newer_schema_is_refused_and_left_untouched);
async fn newer_schema_is_refused_and_left_untouched(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    assert_eq!(
        store.backend_name(),
        if t.file.is_some() { "sqlite" } else { "postgres" }
    );
    store
        .insert_run(&run("s", &run_id(1), RunStatus::Running))
        .await
        .unwrap();
    store.close().await.unwrap();
    // Reopening the current version is a no-op.
    Store::open(&t.url).await.unwrap().close().await.unwrap();
    assert_eq!(
        raw_i64(&t, "SELECT MAX(version) FROM weft_schema").await,
        weft_store::SCHEMA_VERSION
    );

    raw_exec(&t, "INSERT INTO weft_schema (version) VALUES (999)").await;
    let before = t.file.as_ref().map(|f| std::fs::read(f).unwrap());
    let err = match Store::open(&t.url).await {
        Ok(_) => panic!("a newer schema was accepted"),
        Err(e) => e,
    };
    match &err {
        StoreError::SchemaTooNew { found, supported, .. } => {
            assert_eq!(*found, 999);
            assert_eq!(*supported, weft_store::SCHEMA_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.fault(), Fault::Environment);
    assert!(err.to_string().contains("999"), "{err}");
    eprintln!("{err}");
    if let (Some(f), Some(before)) = (&t.file, before) {
        assert_eq!(&std::fs::read(f).unwrap(), &before, "the file was modified");
        assert!(err.to_string().contains(&f.display().to_string()), "{err}");
    }
    // Data and version still there, the running run not touched.
    assert_eq!(raw_i64(&t, "SELECT MAX(version) FROM weft_schema").await, 999);
    assert_eq!(
        raw_i64(&t, "SELECT COUNT(*) FROM weft_runs WHERE status = 'running'").await,
        1
    );
}

// ------------------------------------------------------------- concurrency

both_blocking!(concurrent_writers_lose_no_update);
fn concurrent_writers_lose_no_update(kind: Kind) {
    const THREADS: u32 = 8;
    const RUNS: u32 = 50;
    const CONTESTED: u32 = 20;
    let t = target_blocking(kind);
    let shared = Arc::new(BlockingStore::open(&t.url).unwrap());
    let contested: Vec<RunRecord> = (0..CONTESTED)
        .map(|i| run("contested", &format!("c-{i:03}"), RunStatus::Running))
        .collect();
    shared.insert_runs(&contested).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|th| {
            let shared = shared.clone();
            let url = t.url.clone();
            let barrier = barrier.clone();
            let contested = contested.clone();
            std::thread::spawn(move || {
                // Half the threads share one store, half open their own
                // (like separate processes).
                let own = (th % 2 == 0).then(|| BlockingStore::open(&url).unwrap());
                let store: &BlockingStore = own.as_ref().unwrap_or(&shared);
                barrier.wait();
                let mut won = Vec::new();
                for i in 0..RUNS {
                    let mut r = run("many", &run_id(th * 1000 + i), RunStatus::Queued);
                    r.run_index = th * 1000 + i;
                    store.insert_run(&r).unwrap();
                    r.status = RunStatus::Running;
                    store.update_run(&r).unwrap();
                    r.status = RunStatus::Succeeded;
                    r.metrics = metrics(json!({"thread": th, "i": i}));
                    store.update_run(&r).unwrap();
                    // Everyone tries to finish the contested runs too.
                    if i < CONTESTED {
                        let mut c = contested[i as usize].clone();
                        c.status = if th % 2 == 0 {
                            RunStatus::Succeeded
                        } else {
                            RunStatus::Failed
                        };
                        c.metrics = metrics(json!({"winner": th}));
                        match store.update_run(&c) {
                            Ok(()) => won.push((i, th)),
                            Err(StoreError::InvalidTransition { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                won
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for h in handles {
        for (i, th) in h.join().unwrap() {
            assert!(
                winners.insert(i, th).is_none(),
                "two writers finished contested run {i}"
            );
        }
    }
    assert_eq!(winners.len(), CONTESTED as usize);
    let many = shared
        .list_runs(&RunFilter {
            session_id: Some("many".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(many.len(), (THREADS * RUNS) as usize);
    assert!(
        many.iter()
            .all(|r| r.status == RunStatus::Succeeded && r.metrics.contains_key("i"))
    );
    for (i, th) in winners {
        let c = shared.get_run(&contested[i as usize].run_id).unwrap().unwrap();
        assert!(c.status.is_terminal());
        assert_eq!(
            c.metrics,
            metrics(json!({"winner": th})),
            "the winner's record is stored"
        );
    }
}

// ------------------------------------------------------------ SQLite only

#[tokio::test]
async fn project_default_is_a_wal_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_project_default(dir.path()).await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    store
        .create_session(&session("s", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    store.close().await.unwrap();
    let file = dir.path().join(".weft").join("weft.db");
    assert!(file.is_file());
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    // The URL forms reach the same file.
    for url in [
        format!("sqlite://{}", file.display()),
        format!("sqlite:{}", file.display()),
    ] {
        let s = Store::open(&url).await.unwrap();
        assert!(s.get_session("s").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn corrupt_sqlite_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut header_ok = b"SQLite format 3\0".to_vec();
    header_ok.extend((0..8192u32).map(|i| (i * 7 % 251) as u8));
    for (name, bytes) in [
        (
            "garbage.db",
            b"this is not a database at all, just some text\n".repeat(100),
        ),
        ("short.db", b"xyz".to_vec()),
        ("header.db", header_ok),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let err = match Store::open(&file.display().to_string()).await {
            Ok(_) => panic!("{name}: a corrupt file was opened"),
            Err(e) => e,
        };
        assert!(matches!(err, StoreError::Corrupt { .. }), "{name}: {err:?}");
        assert_eq!(err.fault(), Fault::Environment);
        let msg = err.to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{name} was modified");
        eprintln!("{msg}");
    }
}

#[tokio::test]
async fn unusable_paths_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = match Store::open(&dir.path().display().to_string()).await {
        Ok(_) => panic!("a directory was opened"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

// ---------------------------------------------------------- PostgreSQL only

#[tokio::test]
async fn postgres_wrong_password_names_the_host() {
    let base = pg_base_url();
    let (creds, rest) = base.strip_prefix("postgres://").unwrap().split_once('@').unwrap();
    let user = creds.split(':').next().unwrap();
    let url = format!("postgres://{user}:definitely-wrong@{rest}");
    let err = match Store::open(&url).await {
        Ok(_) => panic!("a wrong password was accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Environment);
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(msg.contains("password"), "{msg}");
    assert!(!msg.contains("definitely-wrong"), "password leaked: {msg}");
    eprintln!("{msg}");

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://{user}:x@127.0.0.1:{port}/db");
    let err = match Store::open(&url).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    eprintln!("{err}");
}

// ------------------------------------------------------------------ kill -9

const CHILD_URL: &str = "WEFT_STORE_TEST_CHILD_URL";

/// Not a test: the body of the child process that `kill -9` tests start
/// (it re-executes this test binary). Without the variable it does nothing.
#[test]
#[ignore = "child process for the kill -9 tests"]
fn child_writer() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let store = BlockingStore::open(&url).unwrap();
    let mut previous: Option<RunRecord> = None;
    for i in 0u32.. {
        let mut r = run("victim", &run_id(i), RunStatus::Running);
        r.run_index = i;
        r.node_timings = (0..20)
            .map(|k| NodeTiming {
                node: format!("node_{k}"),
                start: Timestamp::now(),
                duration_ms: 1.0,
                peak_memory_bytes: None,
                rows_in: None,
                rows_out: None,
                cycle: None,
            })
            .collect();
        store.insert_run(&r).unwrap();
        // Half the runs finish through waited updates, half through the
        // writer's deferred ones (with progress).
        store.update_progress(&r.run_id, timing("extra", 0.5)).unwrap();
        if let Some(mut p) = previous.take() {
            p.status = RunStatus::Succeeded;
            if i % 2 == 0 {
                store.update_run(&p).unwrap();
            } else {
                store.update_run_deferred(&p).unwrap();
            }
        }
        if i % 10 == 0 {
            let batch: Vec<RunRecord> = (0..5)
                .map(|k| run("victim", &format!("q-{i:06}-{k}"), RunStatus::Queued))
                .collect();
            store.insert_runs(&batch).unwrap();
        }
        previous = Some(r);
    }
}

both!(sigkill_mid_write_leaves_a_consistent_store);
async fn sigkill_mid_write_leaves_a_consistent_store(t: Target) {
    let store = Store::open(&t.url).await.unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, &t.url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child_owner = format!(
        "{}:{}",
        weft_store::current_owner().rsplit_once(':').unwrap().0,
        child.id()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = store
            .list_runs(&RunFilter {
                session_id: Some("victim".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
        if n >= 60 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child writer exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the child wrote only {n} runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    store.close().await.unwrap();

    if let Some(f) = &t.file {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.display()))
            .await
            .unwrap();
        let check: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert_eq!(check, "ok");
        c.close().await.unwrap();
    }
    // Reopening recovers: the dead child's running runs are interrupted.
    let store = Store::open(&t.url).await.unwrap();
    let runs = store
        .list_runs(&RunFilter {
            session_id: Some("victim".into()),
            ..Default::default()
        })
        .await
        .unwrap(); // every record decodes
    assert!(runs.len() >= 60);
    assert!(runs.iter().all(|r| r.status != RunStatus::Running));
    let interrupted: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Interrupted)
        .collect();
    assert!(!interrupted.is_empty());
    assert!(
        interrupted
            .iter()
            .all(|r| r.owner.as_deref() == Some(child_owner.as_str()))
    );
    // Each keeps the time of its last recorded write as its end time.
    assert!(
        interrupted
            .iter()
            .all(|r| r.end_time.is_some() && r.end_time == r.updated_at)
    );
    assert!(runs.iter().any(|r| r.status == RunStatus::Succeeded));
}
