//! The durable run queue (not a timed test: prints numbers).
//!
//! `cargo bench -p weft-store --bench queue` (SQLite);
//! `scripts/with-postgres.sh cargo bench -p weft-store --bench queue` adds
//! PostgreSQL (from `WEFT_TEST_POSTGRES_URL`, in a fresh schema).
//!
//! Targets (issue 9): single-run `enqueue` calls from 64 concurrent tasks,
//! each acknowledged only once committed: at least 2,000 per second on
//! SQLite with a p99 under 20 ms. Also measured: claim → complete cycles
//! (one claimer, batches of 16) and 64 concurrent reuse-or-reserve calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_store::{QueueItem, RunRecord, RunStatus, ServerSessionRecord, Store};

const TASKS: usize = 64;
const PER_TASK: usize = 200;

fn run(session: &str, id: String) -> RunRecord {
    RunRecord {
        run_id: id,
        session_id: session.into(),
        run_index: 0,
        status: RunStatus::Queued,
        env: "local".into(),
        runtime_params: serde_json::json!({"lr": 0.01, "batch": 32}),
        pipeline_names: vec!["__default__".into()],
        filters: serde_json::json!({}),
        load_versions: Default::default(),
        saved_versions: Default::default(),
        start_time: None,
        end_time: None,
        duration_ms: None,
        error: None,
        attempts: 0,
        node_timings: vec![],
        process_peak_rss_bytes: None,
        validation: None,
        metrics: Default::default(),
        outputs: Default::default(),
        pending_input: None,
        owner: None,
        updated_at: None,
    }
}

fn session(id: &str, key: Option<String>) -> ServerSessionRecord {
    let now = jiff::Timestamp::now();
    ServerSessionRecord {
        session_id: id.into(),
        key,
        project_path: "/tmp".into(),
        env: None,
        state: "ready".into(),
        reason: None,
        idle_ttl_s: 600,
        max_concurrency: 4,
        created_at: now,
        heartbeat_at: now,
        closed_at: None,
        extra: serde_json::json!({}),
    }
}

/// CPU time of the whole process (every thread), from `/proc/self/stat`
/// (clock ticks of 10 ms): on a shared machine it varies less than wall
/// time.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The machine's 1-minute load average (the figures depend on it).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

async fn bench(label: &str, store: Store) {
    store
        .create_or_reuse_server_session(&session("bench", None))
        .await
        .expect("session");

    // 64 concurrent dispatchers, one run per call, optionally keyed.
    for keyed in [false, true] {
        let started = Instant::now();
        let cpu = cpu_s();
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let id = format!("2026-01-01T00.00.00.000000Z-{keyed}-{t:03}-{i:05}");
                    let item = QueueItem {
                        run: run("bench", id.clone()),
                        spec: serde_json::json!({"runtime_params": {"i": i}, "pipeline_names": ["__default__"]}),
                        max_attempts: 1,
                    };
                    let key = keyed.then_some(id);
                    let t0 = Instant::now();
                    store
                        .enqueue("bench", std::slice::from_ref(&item), key.as_deref())
                        .await
                        .expect("enqueue");
                    latencies.push(t0.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_s() - cpu;
        all.sort();
        println!(
            "{label}: enqueue x{} from {TASKS} tasks{}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
             {:.0} µs CPU per enqueue (this process, all threads), load average {}",
            all.len(),
            if keyed { " (Idempotency-Key)" } else { "" },
            all.len() as f64 / wall,
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0),
            cpu * 1e6 / all.len() as f64,
            load(),
        );
    }

    // Claim → complete, one claimer, batches of 16 (what a session master
    // with 16 slots does, without running anything).
    let total = store.queue_counts("bench").await.expect("counts").queued;
    let started = Instant::now();
    let mut done = 0u64;
    loop {
        let claimed = store
            .claim("bench", "bench-worker", 16, 16, Duration::from_secs(60))
            .await
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        for c in claimed {
            let mut r = store.get_run(&c.run_id).await.expect("get").expect("run");
            r.status = RunStatus::Succeeded;
            r.end_time = Some(jiff::Timestamp::now());
            assert!(store.complete("bench-worker", &r).await.expect("complete"));
            done += 1;
        }
    }
    assert_eq!(done, total);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{label}: claim + get + complete x{done}, one claimer: {:.0} runs/s ({:.0} µs per run)",
        done as f64 / wall,
        wall * 1e6 / done as f64
    );

    // 64 concurrent reuse-or-reserve calls with one key.
    let started = Instant::now();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_or_reuse_server_session(&session(&format!("k{t}"), Some("one-key".into())))
                .await
                .expect("create")
                .1
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.expect("task"));
    }
    assert_eq!(created, 1);
    println!(
        "{label}: {TASKS} concurrent create_or_reuse with one key: {:.2} ms, one session",
        started.elapsed().as_secs_f64() * 1e3
    );
    store.close().await.expect("close");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db").display().to_string();
        bench("sqlite", Store::open(&path).await.expect("open")).await;

        match std::env::var("WEFT_TEST_POSTGRES_URL") {
            Ok(base) => {
                use sqlx::Connection;
                let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let mut c = sqlx::PgConnection::connect(&base).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut c)
                    .await
                    .expect("schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                bench("postgres", Store::open(&url).await.expect("open")).await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut c)
                    .await;
            }
            Err(_) => println!(
                "postgres: skipped (WEFT_TEST_POSTGRES_URL unset; run through scripts/with-postgres.sh)"
            ),
        }
    });
}
