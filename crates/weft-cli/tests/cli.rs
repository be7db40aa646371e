//! The stock `weft` binary as a user drives it: real child processes on a
//! scaffolded project.

use std::path::Path;
use std::process::Command;

fn weft(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn scaffold() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["new", "demo"]);
    ok(&out);
    let root = tmp.path().join("demo");
    (tmp, root)
}

#[test]
fn new_project_runs_and_is_recorded() {
    let (_tmp, root) = scaffold();
    let r = ok(&weft(&root, &["run", "--json"]));
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["outputs"]["total"], 42.5);
    let run_id = r["run_id"].as_str().unwrap();
    assert!(
        root.join("data/total.json")
            .join(run_id)
            .join("total.json")
            .is_file()
    );
    let runs = ok(&weft(&root, &["runs", "list", "--json"]));
    assert_eq!(runs[0]["run_id"], run_id);
    for key in [
        "run_id",
        "session_id",
        "status",
        "start_time",
        "end_time",
        "error",
    ] {
        assert!(runs[0].get(key).is_some(), "runs list lacks `{key}`: {}", runs[0]);
    }
    let sessions = ok(&weft(&root, &["sessions", "list", "--json"]));
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    // Structured logs: every line of a run carries its run id.
    let out = weft(&root, &["--log-format", "json", "run", "--no-store"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(lines.iter().all(|l| l["span"]["run_id"].is_string()), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour codes off a terminal");
}

#[test]
fn run_flags_params_and_errors() {
    let (_tmp, root) = scaffold();
    let r = ok(&weft(&root, &["run", "--json", "--params", "start=1,offset=2"]));
    assert_eq!(r["outputs"]["total"], 4);
    let r = ok(&weft(&root, &["run", "--json", "--nodes", "increment"]));
    assert_eq!(r["outputs"]["incremented"], 42);
    let out = weft(&root, &["run", "--nodes", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = weft(&root, &["run", "--params", "start=1,2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("multirun"));
    // A failing node: non-zero exit with the error chain and a resume hint.
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - {name: a, func: add_one, inputs: params:start, outputs: x}\n    - {name: b, func: fail, inputs: x, outputs: y}\n",
    )
    .unwrap();
    let out = weft(&root, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node `b` failed") && err.contains("--from-nodes \"a\""),
        "{err}"
    );
    let failed = ok(&weft(&root, &["runs", "list", "--status", "failed", "--json"]));
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["error"]["node"], "b");
}

#[test]
fn pipeline_config_catalog_and_viz() {
    let (_tmp, root) = scaffold();
    let v = ok(&weft(&root, &["pipeline", "show", "--json"]));
    assert_eq!(
        v,
        serde_json::json!({"nodes": [
            {"name": "increment", "func": "add_one", "inputs": ["params:start"], "outputs": ["incremented"], "tags": [], "namespace": null},
            {"name": "total", "func": "sum", "inputs": ["incremented", "params:offset"], "outputs": ["total"], "tags": [], "namespace": null}
        ]})
    );
    let v = ok(&weft(&root, &["pipeline", "list", "--json"]));
    assert_eq!(v["pipelines"][0]["name"], "__default__");
    let v = ok(&weft(
        &root,
        &[
            "config",
            "show",
            "--section",
            "parameters",
            "--params",
            "offset=1",
        ],
    ));
    assert_eq!(v, serde_json::json!({"start": 41, "offset": 1}));
    std::fs::write(
        root.join("conf/local/credentials.yml"),
        "db:\n  password: hunter2\n",
    )
    .unwrap();
    let v = ok(&weft(&root, &["config", "show", "--section", "credentials"]));
    assert_eq!(v["db"]["password"], "***");
    let v = ok(&weft(&root, &["catalog", "list", "--json"]));
    let text = v.to_string();
    assert!(
        text.contains("\"total\"") && text.contains("data/total.json"),
        "{text}"
    );
    let out = weft(&root, &["viz"]);
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.starts_with("flowchart TD") && m.contains("n_increment"), "{m}");
}

#[test]
fn multirun_sweeps_the_cartesian_product() {
    let (_tmp, root) = scaffold();
    let v = ok(&weft(
        &root,
        &[
            "multirun",
            "--json",
            "--params",
            "start=1,2,3",
            "--params",
            "offset=range(0,20,10)",
            "--max-workers",
            "2",
        ],
    ));
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 6);
    let mut totals: Vec<f64> = runs
        .iter()
        .map(|r| r["outputs"]["total"].as_f64().unwrap())
        .collect();
    totals.sort_by(f64::total_cmp);
    assert_eq!(totals, [2.0, 3.0, 4.0, 12.0, 13.0, 14.0]);
    assert!(
        runs.iter()
            .all(|r| r["status"] == "succeeded" && r["params"].get("start").is_some())
    );
    // Without --json: one status line per run, then the table.
    let out = weft(&root, &["multirun", "--params", "start=1,2", "--no-store"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains(" succeeded in ")).count(),
        2,
        "{err}"
    );
    assert!(err.contains("[1/2]") && err.contains("start=1"), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("run_id") && table.contains("start") && table.contains("succeeded"),
        "{table}"
    );
    // A failing sweep point makes the command fail; continue runs the rest.
    std::fs::write(root.join("sweep.yml"), "start: [1, \"oops\"]\n").unwrap();
    let out = weft(
        &root,
        &[
            "multirun",
            "--json",
            "--sweep-file",
            "sweep.yml",
            "--policy",
            "continue",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed"]);
}

#[test]
fn help_explains_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "new", "run", "multirun", "pipeline", "config", "catalog", "viz", "sessions", "runs",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}: {help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--pipelines",
        "--tags",
        "--nodes",
        "--from-nodes",
        "--to-nodes",
        "--from-inputs",
        "--to-outputs",
        "--namespaces",
        "--load-versions",
        "--params",
        "--env",
        "--runner",
        "--max-workers",
        "--only-missing-outputs",
        "--conf-source",
        "--project",
        "--log-level",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}");
    }
}
