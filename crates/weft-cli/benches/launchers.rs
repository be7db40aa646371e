//! The process launcher's costs, printed (not a timed test): a `weft
//! worker` child's cold start to a ready `/healthz`, the per-run dispatch
//! overhead to a warm worker over loopback next to the same runs on
//! in-process threads, and a 64-run CPU-bound sweep on 2 worker processes
//! against 1.
//!
//! `cargo bench -p weft-cli --bench launchers` (env: `COLD_STARTS`,
//! `DISPATCHES`, `SWEEP_RUNS`, `SPIN_MS`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_pipeline::CancelToken;
use weft_server::{
    InProcessWorker, LocalProcessLauncher, ProcessOptions, ProcessWorker, Worker, open_served_session,
};
use weft_session::{CloseMode, RunConfig, RunSpec, ServiceSession};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"bench\"\n");
    write(
        root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: one\n      func: add_one\n      inputs: params:start\n      outputs: out\nspin:\n  nodes:\n    - name: spin\n      func: spin_ms\n      inputs: [params:spin, params:start]\n      outputs: out\n",
    );
    write(root, "conf/base/parameters.yml", "start: 1\nspin: 0\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    dir
}

fn spec(session: &ServiceSession, pipeline: Option<&str>, params: Value) -> RunSpec {
    let config = RunConfig {
        pipeline_names: pipeline.map(|p| vec![p.to_string()]).unwrap_or_default(),
        runtime_params: params,
        ..RunConfig::default()
    };
    session.prepare(&config).unwrap().spec().clone()
}

fn process_worker(root: &Path, slots: usize) -> ProcessWorker {
    ProcessWorker::new(
        Arc::new(LocalProcessLauncher::new(env!("CARGO_BIN_EXE_weft"))),
        "bench",
        root,
        None,
        ProcessOptions::new(slots),
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// Dispatches `n` runs, `concurrency` at a time, and returns each run's
/// wall time in ms and the total.
async fn dispatch_all(worker: &dyn Worker, specs: Vec<RunSpec>, concurrency: usize) -> (Vec<f64>, Duration) {
    let t0 = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(specs.into_iter()));
    let lanes = (0..concurrency).map(|_| {
        let queue = Arc::clone(&queue);
        async move {
            let mut times = Vec::new();
            loop {
                let next = queue.lock().unwrap().next();
                let Some(spec) = next else { break };
                let t = Instant::now();
                let record = worker.dispatch(spec, CancelToken::new()).await.unwrap();
                assert_eq!(
                    record.status,
                    weft_store::RunStatus::Succeeded,
                    "{:?}",
                    record.error
                );
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times
        }
    });
    let times = futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect();
    (times, t0.elapsed())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = project();
    let root = dir.path();
    let session = Arc::new(open_served_session(root, Default::default(), "bench", 2).unwrap());
    println!(
        "process launcher benchmarks (load average {} at start)",
        load_average()
    );

    runtime.block_on(async {
        // Cold start: launch to ready /healthz, one worker each time.
        let mut cold = Vec::new();
        for _ in 0..env_usize("COLD_STARTS", 5) {
            let worker = process_worker(root, 1);
            let t = Instant::now();
            worker.start().await.unwrap();
            cold.push(t.elapsed().as_secs_f64() * 1e3);
            worker.stop(CloseMode::Wait).await;
        }
        println!(
            "cold start to ready:          median {:.1} ms (min {:.1}, max {:.1}, {} starts)",
            median(cold.clone()),
            cold.iter().copied().fold(f64::INFINITY, f64::min),
            cold.iter().copied().fold(0.0, f64::max),
            cold.len()
        );

        // Per-run dispatch overhead: trivial one-node runs, one at a time.
        let n = env_usize("DISPATCHES", 1000);
        let specs = |session: &ServiceSession| -> Vec<RunSpec> {
            (0..n).map(|i| spec(session, None, json!({"start": i}))).collect()
        };
        let in_process = InProcessWorker::new(Arc::clone(&session));
        let warm = dispatch_all(&in_process, specs(&session)[..50.min(n)].to_vec(), 1).await;
        drop(warm);
        let (local, local_total) = dispatch_all(&in_process, specs(&session), 1).await;
        let worker = process_worker(root, 1);
        worker.start().await.unwrap();
        let _ = dispatch_all(&worker, specs(&session)[..50.min(n)].to_vec(), 1).await;
        let (remote, remote_total) = dispatch_all(&worker, specs(&session), 1).await;
        worker.stop(CloseMode::Wait).await;
        let per_local = local_total.as_secs_f64() * 1e3 / n as f64;
        let per_remote = remote_total.as_secs_f64() * 1e3 / n as f64;
        println!(
            "trivial run, in-process:      {per_local:.3} ms/run (p50 {:.3}, p99 {:.3}; {n} runs)",
            median(local.clone()),
            percentile(local, 0.99)
        );
        println!(
            "trivial run, warm worker:     {per_remote:.3} ms/run (p50 {:.3}, p99 {:.3}; {n} runs)",
            median(remote.clone()),
            percentile(remote, 0.99)
        );
        println!(
            "dispatch overhead per run:    {:.3} ms (warm worker minus in-process; target <= 2 ms)",
            per_remote - per_local
        );

        // A CPU-bound sweep: 1 worker process vs 2.
        let runs = env_usize("SWEEP_RUNS", 64);
        let spin = env_usize("SPIN_MS", 50);
        let sweep = |session: &ServiceSession| -> Vec<RunSpec> {
            (0..runs)
                .map(|i| spec(session, Some("spin"), json!({"start": i, "spin": spin})))
                .collect()
        };
        let mut totals = Vec::new();
        for slots in [1, 2] {
            let worker = process_worker(root, slots);
            worker.start().await.unwrap();
            let (_, total) = dispatch_all(&worker, sweep(&session), slots).await;
            worker.stop(CloseMode::Wait).await;
            totals.push(total.as_secs_f64());
            println!(
                "{runs} runs of {spin} ms CPU, {slots} worker(s): {:.2} s ({:.1} runs/s)",
                total.as_secs_f64(),
                runs as f64 / total.as_secs_f64()
            );
        }
        println!(
            "speed-up of 2 workers over 1:  {:.2}x (target >= 1.8x; load average {} at end)",
            totals[0] / totals[1],
            load_average()
        );
    });
}
