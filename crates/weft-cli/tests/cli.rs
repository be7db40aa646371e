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
    assert_eq!(
        out.status.code(),
        Some(2),
        "a sweep given to `run` is a usage error"
    );
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
    assert!(
        m.starts_with("flowchart TD") && m.contains("n0[\"increment\"]"),
        "{m}"
    );
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

fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_the_command_cleanly() {
    let (_tmp, root) = scaffold();
    ok(&weft(&root, &["run"]));
    for args in [
        &["runs", "list", "--json"][..],
        &["runs", "list"],
        &["pipeline", "show", "--json"],
        &["viz"],
    ] {
        // The reader is gone before the command writes anything.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .current_dir(&root)
            .args(args)
            .env_remove("WEFT_STORE_URL")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn usage_errors_exit_2_through_the_binary() {
    let (tmp, root) = scaffold();
    for (args, code, says) in [
        (&["--no-such-flag"][..], 2, "--no-such-flag"),
        (&["run", "--max-workers", "many"], 2, "many"),
        (&["viz", "--format", "png"], 2, "png"),
        (&["run", "--env", "staging"], 2, "envs: base, local"),
        (&["run", "--store", "mysql://db/x"], 2, "unknown scheme"),
        (&["run", "--runner", "warp"], 2, "warp"),
        (&["run", "--nodes", "nope"], 1, "nope"),
    ] {
        let out = weft(&root, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    for bad in ["a/b", "with\"quote", "..", "x y"] {
        let out = weft(tmp.path(), &["new", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("letters, digits"), "{bad}: {err}");
    }
    assert!(!tmp.path().join("a").exists(), "nothing created for `a/b`");
}

/// A project whose runs take a while: two `sleep_ms` nodes of `ms` each.
fn slow_project(ms: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, root) = scaffold();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - {name: first, func: sleep_ms, inputs: [params:ms, params:start], outputs: a}\n    - {name: second, func: sleep_ms, inputs: [params:ms, a], outputs: b}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("conf/base/parameters.yml"),
        format!("ms: {ms}\nstart: 0\n"),
    )
    .unwrap();
    std::fs::write(root.join("conf/base/catalog.yml"), "{}\n").unwrap();
    (tmp, root)
}

/// Starts `args`, waits for a stderr line containing `ready`, sends
/// `signal` (`INT`, `TERM`), and returns (exit code, stdout, stderr).
fn interrupt_when(root: &Path, args: &[&str], ready: &str, signal: &str) -> (Option<i32>, String, String) {
    use std::io::{BufRead, Read};
    let mut child = spawn(root, args);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the command printed the ready line");
        if line.contains(ready) {
            break;
        }
    }
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (code, out, reader.join().unwrap())
}

#[test]
fn sigint_and_sigterm_stop_a_run_record_it_and_exit_130() {
    for signal in ["INT", "TERM"] {
        sigint_stops_a_run(signal);
    }
}

fn sigint_stops_a_run(signal: &str) {
    let (_tmp, root) = slow_project(400);
    let (code, _out, err) = interrupt_when(&root, &["run"], "[1/2] first done", signal);
    assert_eq!(code, Some(130), "SIG{signal}: {err}");
    assert!(err.contains("interrupted: run"), "{err}");
    assert!(
        !err.contains("[2/2] second done"),
        "the second node was cancelled: {err}"
    );
    let runs = ok(&weft(&root, &["runs", "list", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "cancelled", "{}", runs[0]);
    let sessions = ok(&weft(&root, &["sessions", "list", "--json"]));
    assert!(sessions[0]["closed_at"].is_string(), "session closed: {sessions}");
}

#[test]
fn sigint_stops_a_multirun_records_every_planned_run_and_exits_130() {
    let (_tmp, root) = slow_project(300);
    let (code, out, err) = interrupt_when(
        &root,
        &[
            "multirun",
            "--params",
            "start=1,2,3,4,5,6,7,8",
            "--max-workers",
            "2",
        ],
        " succeeded in ",
        "INT",
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("8 runs: ") && err.contains("interrupted: "), "{err}");
    assert_eq!(
        out.lines().count(),
        1 + 8,
        "a header and one row per planned run: {out}"
    );
    let runs = ok(&weft(&root, &["runs", "list", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 8, "every planned run is recorded: {runs:?}");
    let mut starts: Vec<i64> = runs
        .iter()
        .map(|r| r["runtime_params"]["start"].as_i64().expect("params recorded"))
        .collect();
    starts.sort();
    assert_eq!(starts, [1, 2, 3, 4, 5, 6, 7, 8]);
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"succeeded"), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| ["succeeded", "cancelled", "skipped"].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s != "succeeded").count() >= 4,
        "runs after the signal did not complete: {statuses:?}"
    );
    assert!(
        statuses.contains(&"skipped"),
        "runs not started are skipped: {statuses:?}"
    );
    let sessions = ok(&weft(&root, &["sessions", "list", "--json"]));
    assert!(sessions[0]["closed_at"].is_string(), "session closed: {sessions}");
}

#[test]
fn a_sweep_logs_to_one_session_file_and_runs_logs_prints_each_runs_lines() {
    let (_tmp, root) = scaffold();
    let v = ok(&weft(
        &root,
        &[
            "multirun",
            "--json",
            "--no-store",
            "--params",
            "start=1,2,3",
            "--max-workers",
            "2",
        ],
    ));
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let session = runs[0]["session_id"].as_str().unwrap();
    // One log and one index for the session: no file per run.
    let mut files: Vec<String> = std::fs::read_dir(root.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, [format!("{session}.index"), format!("{session}.log")]);
    let all = std::fs::read_to_string(root.join("logs").join(format!("{session}.log"))).unwrap();
    for r in runs {
        let run_id = r["run_id"].as_str().unwrap();
        let out = weft(&root, &["runs", "logs", run_id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Exactly this run's lines of the session file, in order.
        let own: Vec<&str> = all
            .lines()
            .filter_map(|l| l.strip_prefix(run_id).and_then(|l| l.strip_prefix(' ')))
            .collect();
        assert_eq!(lines, own);
        assert!(
            lines.first().is_some_and(|l| l.contains("run started"))
                && lines.last().is_some_and(|l| l.contains("run succeeded")),
            "{text}"
        );
    }
    let out = weft(&root, &["runs", "logs", "2000-01-01T00.00.00.000000Z-00000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log of run"));
}

/// The lines of a Prometheus text file, for exact-line assertions.
fn prom_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_files_count_rows_nodes_and_validation_for_runs_and_sweeps() {
    let (_tmp, root) = scaffold();
    std::fs::write(root.join("data/items.json"), "[1, 2, 3]").unwrap();
    let mut catalog = std::fs::read_to_string(root.join("conf/base/catalog.yml")).unwrap();
    catalog.push_str("items:\n  type: json.JSONDataset\n  filepath: data/items.json\n");
    std::fs::write(root.join("conf/base/catalog.yml"), catalog).unwrap();
    let mut pipelines = std::fs::read_to_string(root.join("pipelines.yml")).unwrap();
    pipelines.push_str(
        "rows:\n  nodes:\n    - name: copy\n      func: identity\n      inputs: items\n      outputs: copied\n    - name: broken\n      func: fail\n      inputs: [copied, params:start]\n      outputs: never\n",
    );
    std::fs::write(root.join("pipelines.yml"), pipelines).unwrap();

    // One run: rows in the JSON result and the file; the failing node counted.
    let out = weft(
        &root,
        &[
            "run",
            "--pipeline",
            "rows",
            "--json",
            "--metrics-file",
            "run.prom",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["node_timings"][0]["node"], "copy");
    assert_eq!(r["node_timings"][0]["rows_in"], 3);
    assert_eq!(r["node_timings"][0]["rows_out"], 3);
    assert_eq!(r["validation"]["connections"], 3);
    let lines = prom_lines(&root.join("run.prom"));
    for line in [
        "weft_runs_total{status=\"failed\"} 1",
        "weft_node_runs_total{node=\"copy\",status=\"succeeded\"} 1",
        "weft_node_runs_total{node=\"broken\",status=\"failed\"} 1",
        "weft_node_rows_in_total{node=\"copy\"} 3",
        "weft_node_rows_out_total{node=\"copy\"} 3",
        "weft_validations_total 1",
        "weft_validation_connections_total 3",
    ] {
        assert!(lines.iter().any(|l| l == line), "missing `{line}` in {lines:#?}");
    }
    // The record keeps the rows and the validation too.
    let run_id = r["run_id"].as_str().unwrap();
    let shown = ok(&weft(&root, &["runs", "show", run_id, "--json"]));
    assert_eq!(shown["node_timings"][0]["rows_in"], 3, "{shown}");
    assert_eq!(shown["validation"]["connections"], 3, "{shown}");

    // A sweep: one file for all its runs.
    let out = weft(
        &root,
        &[
            "multirun",
            "--params",
            "start=range(0,3)",
            "--policy",
            "continue",
            "--metrics-file",
            "sweep.prom",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = prom_lines(&root.join("sweep.prom"));
    for line in [
        "weft_runs_total{status=\"succeeded\"} 3",
        "weft_node_runs_total{node=\"increment\",status=\"succeeded\"} 3",
        "weft_node_runs_total{node=\"total\",status=\"succeeded\"} 3",
        "weft_validations_total 3",
        "weft_validation_connections_total 9",
    ] {
        assert!(lines.iter().any(|l| l == line), "missing `{line}` in {lines:#?}");
    }
    assert!(!root.join(".sweep.prom.tmp").exists());
}
