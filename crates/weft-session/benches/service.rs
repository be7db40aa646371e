//! ServiceSession benchmarks (not timed tests: they print numbers).
//!
//! `cargo bench -p weft-session --bench service`
//!
//! * per-run overhead of `ServiceSession::run` on a 10-node memory pipeline
//!   (target ≤ 100 µs), with the store disabled and with the SQLite store;
//! * `run_all` of 64 CPU-bound runs with `max_workers = 2` vs `run_sequential`
//!   (target ≥ 1.8× throughput on 2 cores);
//! * a batch over 1,000 distinct parameter points, one worker (what
//!   `weft multirun` does): µs per run without a store and with SQLite
//!   (targets: ≤ 150 µs, and the store adds ≤ 100 µs);
//! * RSS growth over 10,000 sequential runs with distinct params after
//!   warm-up (target < 1 MB).

use std::path::Path;
use std::time::{Duration, Instant};

use weft_session::{Policy, RunConfig, ServiceOptions, ServiceSession, SessionOptions, StoreChoice};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"bench\"\n");
    let mut yaml = String::from("__default__:\n  nodes:\n");
    for i in 0..10 {
        let input = if i == 0 {
            "params:start".to_string()
        } else {
            format!("d{i}")
        };
        yaml.push_str(&format!(
            "    - {{name: n{i}, func: add_one, inputs: {input}, outputs: d{}}}\n",
            i + 1
        ));
    }
    yaml.push_str("cpu:\n  nodes:\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "    - {{name: spin{i}, func: spin_ms, inputs: [params:ms, params:start], outputs: s{i}}}\n"
        ));
    }
    write(root, "pipelines.yml", &yaml);
    write(root, "conf/base/parameters.yml", "start: 1\nms: 5\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    dir
}

fn session(root: &Path, store: StoreChoice, workers: usize) -> ServiceSession {
    ServiceSession::create(
        root,
        ServiceOptions {
            session: SessionOptions {
                store,
                ..Default::default()
            },
            max_workers: Some(workers),
            history_limit: None,
        },
    )
    .unwrap()
}

fn rss() -> u64 {
    memory_stats::memory_stats()
        .map(|m| m.physical_mem as u64)
        .unwrap_or(0)
}

fn per_run(s: &ServiceSession, n: usize) -> Duration {
    for _ in 0..50 {
        s.run(RunConfig::default()).unwrap();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = s.run(RunConfig::default()).unwrap();
        samples.push(t.elapsed());
        assert_eq!(r.outputs["d10"].to_json().unwrap(), serde_json::json!(11));
    }
    samples.sort();
    samples[n / 2]
}

fn main() {
    let dir = project();
    let root = dir.path();
    println!("weft ServiceSession benchmark");

    let s = session(root, StoreChoice::Disabled, 2);
    let t = per_run(&s, 2000);
    println!(
        "ServiceSession::run, 10-node memory pipeline, no store     median {:>8.1} µs/run",
        t.as_secs_f64() * 1e6
    );
    drop(s);
    let s = session(root, StoreChoice::ProjectDefault, 2);
    let t = per_run(&s, 500);
    println!(
        "ServiceSession::run, 10-node memory pipeline, SQLite store median {:>8.1} µs/run",
        t.as_secs_f64() * 1e6
    );
    drop(s);

    let s = session(root, StoreChoice::Disabled, 2);
    let cpu = |n: usize| -> Vec<RunConfig> {
        (0..n)
            .map(|_| RunConfig {
                pipeline_names: vec!["cpu".into()],
                ..Default::default()
            })
            .collect()
    };
    let t = Instant::now();
    s.run_sequential(cpu(64), &Policy::default(), None).unwrap();
    let seq = t.elapsed();
    let t = Instant::now();
    s.run_all(cpu(64), &Policy::default(), None).unwrap();
    let all = t.elapsed();
    println!(
        "64 CPU-bound runs (4 × spin 5 ms)   run_sequential {:>7.1} ms  run_all(max_workers=2) {:>7.1} ms  throughput {:.2}×",
        seq.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        seq.as_secs_f64() / all.as_secs_f64()
    );

    let points = |n: usize, offset: usize| -> Vec<RunConfig> {
        (0..n)
            .map(|i| RunConfig {
                runtime_params: serde_json::json!({"start": i + offset}),
                ..Default::default()
            })
            .collect()
    };
    for (label, store) in [
        ("no store    ", StoreChoice::Disabled),
        ("SQLite store", StoreChoice::ProjectDefault),
    ] {
        let s = session(root, store, 1);
        s.run_sequential(points(100, 0), &Policy::default(), None)
            .unwrap();
        let t = Instant::now();
        let results = s
            .run_sequential(points(1000, 1000), &Policy::default(), None)
            .unwrap();
        let el = t.elapsed();
        assert!(
            results
                .iter()
                .all(|r| r.status == weft_core::RunStatus::Succeeded)
        );
        println!(
            "batch of 1,000 distinct points, 10-node chain, 1 worker, {label} {:>8.1} µs/run",
            el.as_secs_f64() * 1e6 / 1000.0
        );
    }

    let s = session(root, StoreChoice::Disabled, 1);
    for i in 0..1000 {
        s.run(RunConfig {
            runtime_params: serde_json::json!({"start": i}),
            ..Default::default()
        })
        .unwrap();
    }
    let before = rss();
    for i in 0..10_000 {
        let r = s
            .run(RunConfig {
                runtime_params: serde_json::json!({"start": 1000 + i}),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.status, weft_core::RunStatus::Succeeded);
    }
    let after = rss();
    println!(
        "10,000 sequential runs, distinct params, after 1,000 warm-up runs: RSS {:.1} MB -> {:.1} MB, growth {:.3} MB (session history holds {} records)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after as f64 - before as f64) / 1e6,
        s.results().len()
    );
}
