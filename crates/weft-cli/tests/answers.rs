//! Runs that wait for input from the command line: `--input NODE=FILE`, the
//! terminal prompt (a real pseudo-terminal through `script`), the clear
//! failure without either, and `weft run --server` with `weft runs answer`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: prepare
      func: add_one
      inputs: params:start
      outputs: prepared
    - name: approve
      await_input:
        prompt: How much to add?
        schema: {type: object, properties: {amount: {type: integer, minimum: 0}}, required: [amount]}
      inputs: prepared
      outputs: approval
    - name: finish
      func: identity
      inputs: [prepared, approval]
      outputs: [total, answer]
"#;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("weft.toml"), "[project]\nname = \"asks\"\n").unwrap();
    std::fs::write(root.join("pipelines.yml"), PIPELINES).unwrap();
    std::fs::create_dir_all(root.join("conf/base")).unwrap();
    std::fs::write(root.join("conf/base/parameters.yml"), "start: 1\n").unwrap();
    std::fs::write(root.join("good.json"), r#"{"amount": 3}"#).unwrap();
    std::fs::write(root.join("bad.json"), r#"{"amount": -3}"#).unwrap();
    dir
}

fn weft(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .arg("--project")
        .arg(root)
        .env_remove("WEFT_SERVER")
        .env_remove("WEFT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn without_a_terminal_or_an_answer_the_run_fails_and_says_how_to_answer() {
    let dir = project();
    let out = weft(dir.path(), &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("waits for input at node `approve`: How much to add?"),
        "{err}"
    );
    assert!(err.contains("--input approve=FILE"), "{err}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "input_required", "{result}");
    assert_eq!(result["pending_input"]["node"], "approve", "{result}");
    // Nobody can answer once the command is over: the record says so.
    let run_id = result["run_id"].as_str().unwrap();
    let shown = weft(dir.path(), &["runs", "show", run_id, "--json"]);
    let rec: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(rec["status"], "failed", "{rec}");
    assert_eq!(rec["error"]["kind"], "input_required", "{rec}");
}

#[test]
fn input_files_answer_and_bad_answers_are_refused_with_the_path() {
    let dir = project();
    let good = format!("approve={}", dir.path().join("good.json").display());
    let out = weft(dir.path(), &["run", "--json", "--input", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["outputs"]["answer"]["amount"], 3, "{result}");
    assert_eq!(result["outputs"]["total"], 2, "{result}");

    let bad = format!("approve={}", dir.path().join("bad.json").display());
    let out = weft(dir.path(), &["run", "--input", &bad]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("node `approve`") && err.contains("at /amount"),
        "{err}"
    );

    let out = weft(dir.path(), &["run", "--input", "approve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected NODE=FILE"),
        "{}",
        text(&out.stderr)
    );
    let missing = format!("approve={}", dir.path().join("none.json").display());
    let out = weft(dir.path(), &["run", "--input", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read it"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn on_a_terminal_the_run_asks_until_the_answer_fits() {
    let dir = project();
    let cmd = format!(
        "{} run --json --project {}",
        env!("CARGO_BIN_EXE_weft"),
        dir.path().display()
    );
    // `script` gives the command a pseudo-terminal; our stdin reaches it.
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "dumb")
        .env_remove("WEFT_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        // Not JSON, then breaking the schema, then a fitting answer.
        stdin
            .write_all(b"{amount\n{\"amount\": -1}\n{\"amount\": 7}\n")
            .unwrap();
    }
    let out = wait_bounded(child, 60);
    let all = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("How much to add?"), "{all}");
    assert!(all.contains("not valid JSON"), "{all}");
    assert!(all.contains("at /amount"), "{all}");
    assert!(all.contains("\"amount\": 7"), "{all}");
    assert!(all.contains("\"status\": \"succeeded\""), "{all}");
}

/// Waits at most `secs` for a child (killing it past that), with its output.
fn wait_bounded(mut child: Child, secs: u64) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_served_run_waits_and_weft_runs_answer_resumes_it() {
    let dir = project();
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--listen", "127.0.0.1:0", "--project"])
        .arg(dir.path())
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_STORE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let url = format!("http://{addr}");
    let remote = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .args(["--server", &url])
            .env_remove("WEFT_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = remote(&["run", "--json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("weft runs answer"), "{err}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "input_required", "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();

    let bad = dir.path().join("bad.json");
    let out = remote(&["runs", "answer", &run_id, bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("/amount"), "{}", text(&out.stderr));
    let good = dir.path().join("good.json");
    let out = remote(&["runs", "answer", &run_id, good.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut status = String::new();
    for _ in 0..500 {
        let out = remote(&["runs", "show", &run_id, "--json"]);
        let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
        status = rec["status"].as_str().unwrap_or_default().to_string();
        if status == "succeeded" {
            assert_eq!(rec["outputs"]["answer"]["amount"], 3, "{rec}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill().unwrap();
    let _ = server.wait();
    assert_eq!(status, "succeeded");
}

#[test]
fn a_sweep_answers_with_input_and_fails_runs_nobody_answers() {
    let dir = project();
    let good = format!("approve={}", dir.path().join("good.json").display());
    let out = weft(
        dir.path(),
        &["multirun", "--params", "start=1,2", "--json", "--input", &good],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded"),
        "{runs}"
    );

    let out = weft(dir.path(), &["multirun", "--params", "start=1,2", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in runs.as_array().unwrap() {
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["error"]["kind"], "input_required", "{r}");
        let shown = weft(
            dir.path(),
            &["runs", "show", r["run_id"].as_str().unwrap(), "--json"],
        );
        let rec: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(rec["status"], "failed", "{rec}");
    }
    // Through worker processes the sweep does not wait for an answer either.
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "multirun",
            "--launcher",
            "process",
            "--params",
            "start=1,2",
            "--json",
            "--project",
        ])
        .arg(dir.path())
        .env_remove("WEFT_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, 60);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
