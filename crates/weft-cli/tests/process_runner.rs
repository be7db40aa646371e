//! The `process` runner through the stock binary (which is also the node
//! host it starts): results equal the thread runner's, a crash, a memory
//! or CPU-time limit or a timeout fails that node only, and hosts stay warm
//! between the runs of a session.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weft_session::{RunConfig, Session, SessionOptions, StoreChoice};

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

const PIPELINES: &str = "\
__default__:
  nodes:
    - {name: increment, func: add_one, inputs: params:start, outputs: incremented}
    - {name: twice, func: sum, inputs: [incremented, incremented], outputs: doubled}
    - {name: total, func: sum, inputs: [doubled, params:offset], outputs: total}
    - {name: copy_table, func: identity, inputs: companies, outputs: companies_copy}
crash:
  nodes:
    - {name: boom, func: abort, inputs: params:start, outputs: never}
hog:
  nodes:
    - {name: hog, func: fill_mb, inputs: params:mb, outputs: filled, memory_limit: 64MiB}
spin:
  nodes:
    - {name: spinner, func: spin_ms, inputs: params:spin, outputs: spun, cpu_limit: 1s}
slow:
  nodes:
    - {name: sleepy, func: sleep_ms, inputs: params:sleep, outputs: slept, timeout: 300ms}
";

/// A scaffolded project with [`PIPELINES`], a CSV input and a Parquet output.
fn project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["new", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("demo");
    std::fs::write(root.join("pipelines.yml"), PIPELINES).unwrap();
    std::fs::write(
        root.join("conf/base/parameters.yml"),
        "start: 1\noffset: 10\nmb: 256\nspin: 30000\nsleep: 30000\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(
        root.join("data/companies.csv"),
        "id,name,rating\n1,Acme,0.5\n2,Globex,0.75\n3,Initech,\n",
    )
    .unwrap();
    std::fs::write(
        root.join("conf/base/catalog.yml"),
        "companies:\n  type: pandas.CSVDataset\n  filepath: data/companies.csv\ncompanies_copy:\n  type: pandas.ParquetDataset\n  filepath: data/companies_copy.parquet\n",
    )
    .unwrap();
    (tmp, root)
}

#[test]
fn process_runner_results_equal_the_thread_runners() {
    let (_tmp, root) = project();
    let mut results = Vec::new();
    for runner in ["thread", "process"] {
        let out = weft(&root, &["run", "--no-store", "--runner", runner, "--json"]);
        assert!(out.status.success(), "{runner}: {}", text(&out));
        let result = json(&out);
        assert_eq!(result["status"], "succeeded", "{result}");
        let parquet = std::fs::read(root.join("data/companies_copy.parquet")).unwrap();
        std::fs::remove_file(root.join("data/companies_copy.parquet")).unwrap();
        results.push((result["outputs"].clone(), parquet.len()));
    }
    assert_eq!(results[0].0["total"], 14, "{:?}", results[0]);
    assert_eq!(results[0], results[1], "thread vs process");
}

#[test]
fn a_crash_a_limit_or_a_timeout_fails_that_node_and_names_why() {
    let (_tmp, root) = project();
    for (pipeline, expected) in [
        (
            "crash",
            "node `boom` failed: its node host process ended while running it (signal: 6 (SIGABRT))",
        ),
        (
            "hog",
            "node `hog` failed: node hog exceeded its 64 MiB memory limit (memory allocation of",
        ),
        (
            "spin",
            "node `spinner` failed: node spinner exceeded its 1s CPU-time limit",
        ),
        ("slow", "node `sleepy` exceeded its 300ms timeout"),
    ] {
        let out = weft(
            &root,
            &["run", "--no-store", "--runner", "process", "--pipeline", pipeline],
        );
        // A clean failure of the run (exit 1), not a killed weft.
        assert_eq!(out.status.code(), Some(1), "{pipeline}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{pipeline}: expected `{expected}` in {}",
            text(&out)
        );
    }
}

fn session(root: &Path, program: &Path) -> Session {
    Session::create(
        root,
        SessionOptions {
            store: StoreChoice::Disabled,
            node_host_program: Some(program.to_path_buf()),
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

fn config(pipeline: &str) -> RunConfig {
    RunConfig {
        pipeline_names: vec![pipeline.to_string()],
        runner: Some("process".into()),
        ..RunConfig::default()
    }
}

#[test]
fn a_session_survives_a_crashing_node_and_runs_on() {
    let (_tmp, root) = project();
    // The test process itself opens the session: an abort in-process would
    // end the test binary.
    let mut session = session(&root, Path::new(env!("CARGO_BIN_EXE_weft")));
    let crashed = session.run(config("crash")).unwrap_err().to_string();
    assert!(crashed.contains("SIGABRT"), "{crashed}");
    let timed_out = session.run(config("slow")).unwrap_err().to_string();
    assert!(timed_out.contains("exceeded its 300ms timeout"), "{timed_out}");
    let ok = session.run(config("__default__")).unwrap();
    assert_eq!(ok.outputs["total"].to_json().unwrap(), serde_json::json!(14));
}

#[test]
fn a_missing_host_program_fails_the_run_with_its_name() {
    let (_tmp, root) = project();
    let mut session = session(&root, Path::new("/nonexistent/weft-host"));
    let err = session.run(config("__default__")).unwrap_err().to_string();
    assert!(
        err.contains("cannot start the node host `/nonexistent/weft-host`"),
        "{err}"
    );
    let mut no_program = Session::create(
        &root,
        SessionOptions {
            store: StoreChoice::Disabled,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let err = no_program.run(config("__default__")).unwrap_err().to_string();
    assert!(err.contains("needs a node-host program"), "{err}");
}

#[test]
fn hosts_stay_warm_across_the_runs_of_a_session() {
    let (_tmp, root) = project();
    let out = weft(
        &root,
        &[
            "multirun",
            "--no-store",
            "--runner",
            "process",
            "--max-workers",
            "1",
            "--params",
            "start=1,2,3,4,5,6",
            "--log-level",
            "info",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let started = stderr.matches("node host started").count();
    // Six runs of four nodes, one run at a time, at most two nodes of a
    // run at once: the hosts of the first run serve all 24 calls.
    assert!((1..=2).contains(&started), "{started} hosts: {}", text(&out));
}

#[test]
fn a_process_tag_sends_only_tagged_nodes_to_hosts() {
    let (_tmp, root) = project();
    let settings = std::fs::read_to_string(root.join("weft.toml")).unwrap();
    let settings = if settings.contains("[run]") {
        settings.replace("[run]", "[run]\nprocess_tag = \"isolate\"")
    } else {
        format!("{settings}\n[run]\nprocess_tag = \"isolate\"\n")
    };
    std::fs::write(root.join("weft.toml"), settings).unwrap();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - {name: safe, func: add_one, inputs: params:start, outputs: a}\n    - {name: boom, func: abort, inputs: a, outputs: b, tags: [isolate]}\n",
    )
    .unwrap();
    let mut session = session(&root, Path::new(env!("CARGO_BIN_EXE_weft")));
    // `safe` runs on the runner's thread, `boom` in a host: the abort ends
    // the host, not this test process.
    let err = session.run(config("__default__")).unwrap_err().to_string();
    assert!(err.contains("node `boom`") && err.contains("SIGABRT"), "{err}");
}
