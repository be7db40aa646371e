//! The `process` runner's costs, printed (not a timed test): the per-node
//! overhead of a warm node host over the thread runner on a chain of
//! trivial nodes, the cold start of a host, and what an Arrow table costs
//! to cross (in and out of a host) by size.
//!
//! `cargo bench -p weft-cli --bench process_runner` (env: `CHAIN`, `RUNS`).

use std::path::Path;
use std::time::{Duration, Instant};

use weft_session::{RunConfig, Session, SessionOptions, StoreChoice};

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

/// A chain of `chain` `add_one` nodes, and one `identity` hop per table size.
fn project(chain: usize, sizes: &[usize]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"bench\"\n");
    write(root, "conf/base/parameters.yml", "start: 0\n");
    write(root, "conf/local/.keep", "");
    let mut yaml = String::from("chain:\n  nodes:\n");
    for i in 0..chain {
        let input = if i == 0 {
            "params:start".to_string()
        } else {
            format!("v{}", i - 1)
        };
        yaml.push_str(&format!(
            "    - {{name: n{i}, func: add_one, inputs: {input}, outputs: v{i}}}\n"
        ));
    }
    let mut catalog = String::new();
    for rows in sizes {
        yaml.push_str(&format!(
            "prep_{rows}:\n  nodes:\n    - {{name: prep_{rows}, func: identity, inputs: csv_{rows}, outputs: table_{rows}}}\ntable_{rows}:\n  nodes:\n    - {{name: hop_{rows}, func: identity, inputs: table_{rows}, outputs: copy_{rows}}}\n    - {{name: back_{rows}, func: identity, inputs: copy_{rows}, outputs: out_{rows}}}\n"
        ));
        let mut csv = String::from("id,name,x,y\n");
        for r in 0..*rows {
            csv.push_str(&format!("{r},name{r},{},{}\n", r as f64 * 0.5, r % 7));
        }
        write(root, &format!("data/t{rows}.csv"), &csv);
        catalog.push_str(&format!(
            "csv_{rows}:\n  type: pandas.CSVDataset\n  filepath: data/t{rows}.csv\ntable_{rows}:\n  type: pandas.ParquetDataset\n  filepath: data/t{rows}.parquet\n"
        ));
    }
    write(root, "pipelines.yml", &yaml);
    write(root, "conf/base/catalog.yml", &catalog);
    dir
}

fn session(root: &Path) -> Session {
    Session::create(
        root,
        SessionOptions {
            store: StoreChoice::Disabled,
            node_host_program: Some(env!("CARGO_BIN_EXE_weft").into()),
            ..SessionOptions::default()
        },
    )
    .expect("open the bench project")
}

fn time_runs(session: &mut Session, pipeline: &str, runner: &str, runs: usize) -> Duration {
    let config = RunConfig {
        pipeline_names: vec![pipeline.into()],
        runner: Some(runner.into()),
        max_workers: Some(1),
        ..RunConfig::default()
    };
    // Warm-up: hosts started, configuration cached.
    session.run(config.clone()).expect("warm-up run");
    let start = Instant::now();
    for _ in 0..runs {
        session.run(config.clone()).expect("bench run");
    }
    start.elapsed() / runs as u32
}

fn main() {
    let chain = env_usize("CHAIN", 100);
    let runs = env_usize("RUNS", 20);
    let sizes = [1_000, 100_000];
    let dir = project(chain, &sizes);
    let root = dir.path();

    let mut thread = session(root);
    let mut process = session(root);
    let t = time_runs(&mut thread, "chain", "thread", runs);
    let p = time_runs(&mut process, "chain", "process", runs);
    let per_node = (p.as_secs_f64() - t.as_secs_f64()) / chain as f64;
    println!(
        "chain of {chain} trivial nodes, {runs} runs: thread {:.3} ms/run, process {:.3} ms/run (warm hosts): {:.1} µs per node of overhead (target ≤ 5 ms)",
        t.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        per_node * 1e6
    );

    // Cold start: a fresh session's first run starts its host.
    let mut colds = Vec::new();
    for _ in 0..5 {
        let mut fresh = session(root);
        let config = RunConfig {
            pipeline_names: vec!["chain".into()],
            runner: Some("process".into()),
            max_workers: Some(1),
            node_names: vec!["n0".into()],
            ..RunConfig::default()
        };
        let start = Instant::now();
        fresh.run(config).expect("cold run");
        colds.push(start.elapsed());
    }
    colds.sort();
    println!(
        "cold start (a fresh session's first one-node run, host start included): median {:.1} ms (min {:.1}, max {:.1})",
        colds[2].as_secs_f64() * 1e3,
        colds[0].as_secs_f64() * 1e3,
        colds[4].as_secs_f64() * 1e3
    );

    for rows in sizes {
        let prep = RunConfig {
            pipeline_names: vec![format!("prep_{rows}")],
            ..RunConfig::default()
        };
        thread.run(prep).expect("write the Parquet table");
        let pipeline = format!("table_{rows}");
        let runs = if rows > 10_000 { 5 } else { runs };
        let t = time_runs(&mut thread, &pipeline, "thread", runs);
        let p = time_runs(&mut process, &pipeline, "process", runs);
        // Two hops, each crossing in and out: four Arrow IPC crossings.
        println!(
            "{rows}-row table (4 columns) through 2 identity nodes: thread {:.2} ms/run, process {:.2} ms/run: {:.3} ms per crossing",
            t.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            (p.as_secs_f64() - t.as_secs_f64()) * 1e3 / 4.0
        );
    }
}
