//! The demo project end to end, through the real `spaceflights` binary
//! (weft's CLI with the project's functions) on a copy of the project.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn project_copy() -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spaceflights");
    std::fs::create_dir_all(root.join("data")).unwrap();
    for f in ["weft.toml", "pipelines.yml"] {
        std::fs::copy(src.join(f), root.join(f)).unwrap();
    }
    copy_dir(&src.join("conf"), &root.join("conf"));
    copy_dir(&src.join("scripts"), &root.join("scripts"));
    (tmp, root)
}

fn weft(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spaceflights"))
        .arg("--project")
        .arg(root)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .output()
        .unwrap()
}

fn newest_version(dir: &Path) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    versions.sort();
    versions.pop().unwrap()
}

#[test]
fn full_pipeline_trains_a_useful_model_and_records_the_run() {
    let (_tmp, root) = project_copy();
    let out = weft(&root, &["run", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "succeeded");
    let run_id = result["run_id"].as_str().unwrap().to_string();

    for file in [
        "data/01_raw/companies.csv",
        "data/01_raw/shuttles.csv",
        "data/01_raw/reviews.csv",
        "data/02_intermediate/preprocessed_companies.parquet",
        "data/02_intermediate/preprocessed_shuttles.parquet",
        "data/03_primary/model_input_table.parquet",
    ] {
        assert!(root.join(file).is_file(), "{file} missing");
    }
    let metrics_file = root
        .join("data/08_reporting/metrics.json")
        .join(&run_id)
        .join("metrics.json");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(metrics_file).unwrap()).unwrap();
    assert!(metrics["r2_score"].as_f64().unwrap() > 0.8, "{metrics}");
    assert_eq!(metrics["n_test"], 400);
    assert!(root.join("data/06_models/regressor.json").join(&run_id).is_dir());

    // The run is in the store, and its lines are in its session's log.
    let out = weft(&root, &["runs", "show", &run_id, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["node_timings"].as_array().unwrap().len(), 7);
    let session_id = rec["session_id"].as_str().unwrap();
    let log = root.join("logs").join(format!("{session_id}.log"));
    let session_text = std::fs::read_to_string(&log).unwrap();
    assert!(session_text.contains(&format!("{run_id} ")), "{session_text}");
    let out = weft(&root, &["runs", "logs", &run_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log_text = String::from_utf8(out.stdout).unwrap();
    assert!(log_text.contains("run succeeded"), "{log_text}");
}

#[test]
fn rerun_with_other_params_keeps_both_versions_and_only_missing_outputs_skips() {
    let (_tmp, root) = project_copy();
    let first = weft(&root, &["run", "--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = weft(
        &root,
        &[
            "run",
            "--json",
            "--pipelines",
            "data_science",
            "--params",
            "model_options.test_size=0.5",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = r["run_id"].as_str().unwrap();
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            newest_version(&root.join("data/08_reporting/metrics.json")).join("metrics.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(metrics["n_test"], 1000, "run {run_id} used the runtime param");
    assert_eq!(
        std::fs::read_dir(root.join("data/08_reporting/metrics.json"))
            .unwrap()
            .count(),
        2
    );

    // Everything persisted exists: only the nodes with memory outputs run again.
    let out = weft(
        &root,
        &[
            "run",
            "--only-missing-outputs",
            "--pipelines",
            "data_processing",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["skipped_nodes"],
        serde_json::json!([
            "preprocess_companies",
            "preprocess_shuttles",
            "create_model_input_table"
        ])
    );
}

#[test]
fn inspection_commands_describe_the_project() {
    let (_tmp, root) = project_copy();
    let out = weft(
        &root,
        &[
            "pipeline",
            "show",
            "--json",
            "--to-nodes",
            "create_model_input_table",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "generate_raw_data",
            "preprocess_companies",
            "preprocess_shuttles",
            "create_model_input_table"
        ]
    );
    assert_eq!(v["nodes"][0]["func"], "generate_raw_data");
    assert_eq!(
        v["nodes"][0]["outputs"],
        serde_json::json!(["companies", "shuttles", "reviews"])
    );

    let out = weft(&root, &["catalog", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("preprocessed_companies") && text.contains("data/02_intermediate"),
        "{text}"
    );

    let out = weft(&root, &["viz", "--format", "dot"]);
    let dot = String::from_utf8_lossy(&out.stdout);
    // Ids are positional (`n3`, `d7`); names are the labels.
    let id_of = |label: &str| {
        dot.lines()
            .find(|l| l.contains(&format!("label=\"{label}\"")))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no `{label}` in {dot}"))
    };
    let edge = format!("{} -> {};", id_of("train_model"), id_of("regressor"));
    assert!(
        dot.starts_with("digraph pipeline {") && dot.contains(&edge),
        "{edge}: {dot}"
    );

    let out = weft(&root, &["pipeline", "show", "--nodes", "train"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train"), "{err}");
}

/// The r2 score of each run of a `multirun --json`, in sweep order.
fn sweep_r2(root: &Path, workers: &str) -> Vec<f64> {
    let out = weft(
        root,
        &[
            "multirun",
            "--params",
            "generation.seed=1,2,3,4",
            "--max-workers",
            workers,
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "succeeded", "{r}");
            let run_id = r["run_id"].as_str().unwrap();
            let file = root
                .join("data/08_reporting/metrics.json")
                .join(run_id)
                .join("metrics.json");
            let metrics: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            metrics["r2_score"].as_f64().unwrap()
        })
        .collect()
}

/// Regression (issue 8 §1): with two workers, runs overwrote each other's
/// non-versioned intermediate files and seeds 1 and 2 reported the same r2.
#[test]
fn seed_sweep_with_two_workers_equals_the_runs_made_one_by_one() {
    let (_tmp, root) = project_copy();
    let one_by_one = sweep_r2(&root, "1");
    let (_tmp2, root2) = project_copy();
    let concurrent = sweep_r2(&root2, "2");
    assert_eq!(concurrent, one_by_one);
    let mut distinct = one_by_one.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each seed gives its own model: {one_by_one:?}");
}

#[test]
fn the_review_pipeline_waits_for_an_approval_given_with_input() {
    let (_tmp, root) = project_copy();
    let out = weft(&root, &["run", "--json", "--pipeline", "review"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paused: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paused["status"], "input_required", "{paused}");
    assert_eq!(paused["pending_input"]["node"], "approve_model");
    let answer = root.join("approval.json");
    std::fs::write(&answer, r#"{"approved": true, "note": "r2 is fine"}"#).unwrap();
    let flag = format!("approve_model={}", answer.display());
    let out = weft(
        &root,
        &["run", "--json", "--pipeline", "review", "--input", &flag],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["outputs"]["approval"]["approved"], true, "{done}");
    assert!(
        done["metrics"]["metrics.r2_score"]
            .as_f64()
            .is_some_and(|r2| r2 > 0.5),
        "{done}"
    );
}

#[test]
fn the_python_report_step_runs_as_a_command_node_without_changing_the_results() {
    let (_tmp, root) = project_copy();
    let out = weft(&root, &["run", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = weft(&root, &["run", "--pipeline", "reported", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reported["status"], "succeeded", "{reported}");
    let metrics_of = |r: &serde_json::Value| -> serde_json::Value {
        let id = r["run_id"].as_str().unwrap();
        let file = root
            .join("data/08_reporting/metrics.json")
            .join(id)
            .join("metrics.json");
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    };
    assert_eq!(
        metrics_of(&plain),
        metrics_of(&reported),
        "the report step changes nothing"
    );
    let run_id = reported["run_id"].as_str().unwrap();
    assert_eq!(reported["saved_versions"]["model_report"], run_id, "{reported}");
    let report = std::fs::read_to_string(
        root.join("data/08_reporting/report.md")
            .join(run_id)
            .join("report.md"),
    )
    .unwrap();
    let r2 = metrics_of(&reported)["r2_score"].as_f64().unwrap();
    assert!(report.contains(&format!("| r2_score | {r2:.4} |")), "{report}");
    // The script's stdout is in the run's log, with the node's name.
    let out = weft(&root, &["runs", "logs", run_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8(out.stdout).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("report: r2_score="))
        .unwrap_or_else(|| panic!("no report line in {log}"));
    assert!(line.contains("write_report"), "{line}");
}

#[test]
fn the_process_runner_trains_the_same_model_in_node_hosts() {
    // The project's own binary is the node host, so its Rust functions
    // run in child processes; tables cross as Arrow IPC.
    let mut metrics = Vec::new();
    for runner in ["thread", "process"] {
        let (_tmp, root) = project_copy();
        let out = weft(&root, &["run", "--no-store", "--runner", runner, "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{runner}: {stderr}");
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["status"], "succeeded", "{runner}: {result}");
        metrics.push(result["outputs"]["metrics"].clone());
    }
    assert!(metrics[0]["r2_score"].as_f64().unwrap() > 0.5, "{:?}", metrics[0]);
    assert_eq!(metrics[0], metrics[1], "thread vs process");
}
