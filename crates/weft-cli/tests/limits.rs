//! `weft run --runner async` and the run and node timeouts, through the
//! stock binary on a scaffolded project.

use std::path::Path;
use std::process::{Command, Output};

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .env_remove("RUST_LOG")
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

/// A project with `pipelines` as its pipelines file and no datasets.
fn project(pipelines: &str, parameters: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["new", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("demo");
    std::fs::write(root.join("pipelines.yml"), pipelines).unwrap();
    std::fs::write(root.join("conf/base/parameters.yml"), parameters).unwrap();
    std::fs::write(root.join("conf/base/catalog.yml"), "{}\n").unwrap();
    (tmp, root)
}

/// Fifty independent 100 ms sleeps feeding one sum.
fn wide_sleeps() -> String {
    let mut yaml = String::from("__default__:\n  nodes:\n");
    let mut outs = Vec::new();
    for i in 0..50 {
        yaml.push_str(&format!(
            "    - {{name: s{i:02}, func: sleep_ms, inputs: [params:ms, params:one], outputs: o{i:02}}}\n"
        ));
        outs.push(format!("o{i:02}"));
    }
    yaml.push_str(&format!(
        "    - {{name: total, func: sum, inputs: [{}], outputs: total}}\n",
        outs.join(", ")
    ));
    yaml
}

#[test]
fn run_with_the_async_runner() {
    let (_tmp, root) = project(&wide_sleeps(), "ms: 100\none: 1\n");
    // 50 sleeps of 100 ms overlap on timers; a 3 s run limit (half the 5 s
    // they take one by one) makes a missing overlap a failure.
    let out = weft(
        &root,
        &[
            "run",
            "--runner",
            "async",
            "--timeout",
            "3s",
            "--json",
            "--no-store",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["outputs"]["total"], 50.0, "{r}");
    assert_eq!(r["node_timings"].as_array().map(Vec::len), Some(51));
    // The same through weft.toml's `[run] runner`, recorded in the store.
    let toml = std::fs::read_to_string(root.join("weft.toml")).unwrap();
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[run]\nrunner = \"async\"\n"),
    )
    .unwrap();
    let r = json(&weft(&root, &["run", "--json"]));
    assert_eq!(r["status"], "succeeded", "{r}");
    let runs = json(&weft(&root, &["runs", "list", "--json"]));
    assert_eq!(runs[0]["run_id"], r["run_id"]);
}

const CHAIN: &str = "__default__:\n  nodes:\n    - {name: first, func: sleep_ms, inputs: [params:ms, params:one], outputs: a}\n    - {name: train_model, func: sleep_ms, inputs: [params:ms, a], outputs: b}\n";

#[test]
fn the_run_timeout_from_the_flag_and_from_weft_toml() {
    let (_tmp, root) = project(CHAIN, "ms: 2000\none: 1\n");
    for runner in ["sequential", "thread", "async"] {
        let out = weft(
            &root,
            &[
                "run",
                "--runner",
                runner,
                "--timeout",
                "200ms",
                "--json",
                "--no-store",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{runner}: {}", text(&out));
        let r = json(&out);
        assert_eq!(r["status"], "failed", "{runner}: {r}");
        assert_eq!(r["error"]["kind"], "timeout", "{runner}: {r}");
        assert_eq!(r["error"]["node"], "first", "{runner}: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("node `first` exceeded the run's 200ms timeout"),
            "{runner}: {message}"
        );
    }
    let toml = std::fs::read_to_string(root.join("weft.toml")).unwrap();
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[run]\ntimeout = \"150ms\"\n"),
    )
    .unwrap();
    let out = weft(&root, &["run", "--json", "--no-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&out);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("node `first` exceeded the run's 150ms timeout"),
        "{r}"
    );
    // The flag wins over weft.toml.
    let out = weft(
        &root,
        &[
            "run",
            "--timeout",
            "1h",
            "--params",
            "ms=1",
            "--json",
            "--no-store",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // A bad value in weft.toml names where it is.
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[run]\ntimeout = \"soon\"\n"),
    )
    .unwrap();
    let out = weft(&root, &["run", "--no-store"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        err.contains("[run] timeout") && err.contains("`soon` is not a duration"),
        "{err}"
    );
}

#[test]
fn a_node_timeout_in_pipelines_yml() {
    let yaml = CHAIN.replace("outputs: b}", "outputs: b, timeout: 100ms}");
    let (_tmp, root) = project(&yaml, "ms: 2000\none: 1\n");
    let out = weft(
        &root,
        &[
            "run",
            "--runner",
            "async",
            "--json",
            "--no-store",
            "--params",
            "ms=10",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = weft(&root, &["run", "--no-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node `train_model` exceeded its 100ms timeout"),
        "{err}"
    );
    assert!(err.contains("--from-nodes \"first\""), "{err}");
}

#[test]
fn bad_timeouts_are_clear_errors() {
    let yaml = CHAIN.replace("outputs: b}", "outputs: b, timeout: 5 minutes}");
    let (_tmp, root) = project(&yaml, "ms: 1\none: 1\n");
    let out = weft(&root, &["run", "--no-store"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        err.contains("pipelines.yml")
            && err.contains("pipeline `__default__`, node `train_model`")
            && err.contains("`timeout`: `5 minutes` has an unknown unit `minutes`"),
        "{err}"
    );
    let (_tmp, root) = project(CHAIN, "ms: 1\none: 1\n");
    let out = weft(&root, &["run", "--timeout", "30"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains("--timeout") && err.contains("has no unit"), "{err}");
}
