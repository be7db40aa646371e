//! Recording runs on SQLite (not a timed test: prints numbers).
//!
//! `cargo bench -p weft-store --bench record_runs`
//!
//! Targets: the `weft multirun` pattern (a planned batch inserted
//! `queued`, then per run `running`, a progress update after each of 10
//! nodes and the terminal update) costs at most 100 µs per run, flush
//! included. Measured as the caller sees it (the writer thread works in
//! parallel) and end to end (until `flush` returns).

use std::collections::BTreeMap;
use std::time::Instant;

use weft_store::{BlockingStore, NodeTiming, RunRecord, RunStatus, SessionRecord};

fn record(session: &str, i: u32) -> RunRecord {
    RunRecord {
        run_id: format!("2026-01-01T00.00.00.{i:06}Z-{:08x}", i),
        session_id: session.into(),
        run_index: i,
        status: RunStatus::Running,
        env: "local".into(),
        runtime_params: serde_json::json!({"lr": 0.01 * f64::from(i % 10), "batch": 32}),
        pipeline_names: vec!["__default__".into()],
        filters: serde_json::json!({}),
        load_versions: BTreeMap::new(),
        saved_versions: BTreeMap::new(),
        start_time: Some(jiff::Timestamp::now()),
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

/// CPU time of the whole process (every thread: caller, writer, SQLite
/// workers), from `/proc/self/stat` (clock ticks of 10 ms): on a shared
/// machine it varies less than wall time.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after `)`.
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall and CPU µs per run since `(wall, cpu)`.
fn per_run(since: (Instant, f64), runs: u32) -> (f64, f64) {
    (
        since.0.elapsed().as_secs_f64() * 1e6 / f64::from(runs),
        (cpu_s() - since.1) * 1e6 / f64::from(runs),
    )
}

fn main() {
    let n = 10_000u32;
    let dir = tempfile::tempdir().unwrap();
    let store = BlockingStore::open(&dir.path().join("bench.db").display().to_string()).unwrap();
    let session = SessionRecord {
        session_id: "bench".into(),
        kind: "service".into(),
        project_path: "/tmp".into(),
        env: "local".into(),
        runtime_params: serde_json::json!({}),
        created_at: jiff::Timestamp::now(),
        closed_at: None,
        username: None,
        git_commit: None,
        git_dirty: None,
        command: vec![],
    };
    store.create_session(&session).unwrap();
    println!("weft run store benchmark (SQLite, WAL, synchronous=NORMAL)");

    // As a service session records a run: queued when accepted, running
    // when it starts, succeeded when it ends (1 insert + 2 updates).
    let start = (Instant::now(), cpu_s());
    for i in 0..n {
        let mut r = record("bench", i);
        r.status = RunStatus::Queued;
        r.start_time = None;
        store.insert_run(&r).unwrap();
        r.status = RunStatus::Running;
        r.start_time = Some(jiff::Timestamp::now());
        store.update_run(&r).unwrap();
        r.status = RunStatus::Succeeded;
        r.end_time = Some(jiff::Timestamp::now());
        r.duration_ms = Some(1.0);
        r.node_timings = (0..10)
            .map(|k| NodeTiming {
                node: format!("n{k}"),
                start: jiff::Timestamp::now(),
                duration_ms: 0.01,
                peak_memory_bytes: None,
                rows_in: None,
                rows_out: None,
                cycle: None,
            })
            .collect();
        store.update_run(&r).unwrap();
    }
    let (wall, cpu) = per_run(start, n);
    println!("{n} runs, insert + 2 waited updates each:        {wall:>8.1} µs per run ({cpu:.1} µs CPU)");

    // Batched: one transaction for many queued runs.
    let batch: Vec<RunRecord> = (n..2 * n)
        .map(|i| RunRecord {
            status: RunStatus::Queued,
            ..record("bench", i)
        })
        .collect();
    let start = (Instant::now(), cpu_s());
    for chunk in batch.chunks(1000) {
        store.insert_runs(chunk).unwrap();
    }
    let (wall, cpu) = per_run(start, n);
    println!("{n} runs inserted in batches of 1,000:           {wall:>8.1} µs per run ({cpu:.1} µs CPU)");
    let listed = store
        .list_runs(&weft_store::RunFilter {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 100);

    // The multirun pattern, every update waited for (what the session did).
    let m = 2_000u32;
    let base = 2 * n;
    let planned: Vec<RunRecord> = (base..base + m)
        .map(|i| RunRecord {
            status: RunStatus::Queued,
            start_time: None,
            ..record("bench", i)
        })
        .collect();
    let start = (Instant::now(), cpu_s());
    store.insert_runs(&planned).unwrap();
    for mut r in planned {
        r.status = RunStatus::Running;
        r.start_time = Some(jiff::Timestamp::now());
        store.update_run(&r).unwrap();
        finish(&mut r);
        store.update_run(&r).unwrap();
    }
    let (wall, cpu) = per_run(start, m);
    println!("{m} runs, multirun pattern, waited updates:       {wall:>8.1} µs per run ({cpu:.1} µs CPU)");

    // The same through the writer: deferred updates, progress per node.
    let base = base + m;
    let planned: Vec<RunRecord> = (base..base + n)
        .map(|i| RunRecord {
            status: RunStatus::Queued,
            start_time: None,
            ..record("bench", i)
        })
        .collect();
    let start = (Instant::now(), cpu_s());
    store.insert_runs(&planned).unwrap();
    for mut r in planned {
        r.status = RunStatus::Running;
        r.start_time = Some(jiff::Timestamp::now());
        store.update_run_deferred(&r).unwrap();
        for k in 0..10 {
            store.update_progress(&r.run_id, timing(k)).unwrap();
        }
        finish(&mut r);
        store.update_run_deferred(&r).unwrap();
    }
    let caller = start.0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    store.flush().unwrap();
    let (wall, cpu) = per_run(start, n);
    println!(
        "{n} runs, multirun pattern, deferred + 10 progress: {wall:>8.1} µs per run end to end ({cpu:.1} µs CPU; {caller:.1} µs until the last call returned)"
    );
    let last = store
        .get_run(&record("bench", base + n - 1).run_id)
        .unwrap()
        .unwrap();
    assert_eq!(last.status, RunStatus::Succeeded);
    assert_eq!(last.node_timings.len(), 10);
}

fn timing(k: usize) -> NodeTiming {
    NodeTiming {
        node: format!("n{k}"),
        start: jiff::Timestamp::now(),
        duration_ms: 0.01,
        peak_memory_bytes: None,
        rows_in: None,
        rows_out: None,
        cycle: None,
    }
}

fn finish(r: &mut RunRecord) {
    r.status = RunStatus::Succeeded;
    r.end_time = Some(jiff::Timestamp::now());
    r.duration_ms = Some(1.0);
    r.node_timings = (0..10).map(timing).collect();
}
