//! The CLI driven in-process through `weft_cli::run_with`: output captured
//! from the writers, settings from an explicit `Environment`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use weft_cli::{Environment, run_with};
use weft_session::ProjectCode;

struct Outcome {
    code: u8,
    out: String,
    err: String,
}

impl Outcome {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.out, self.err);
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {}", self.out))
    }
}

fn weft_in(root: &Path, env: &Environment, args: &[&str]) -> Outcome {
    let mut argv = vec!["weft".to_string(), "--project".into(), root.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(argv, env, ProjectCode::default(), &mut out, &mut err);
    Outcome {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn weft(root: &Path, args: &[&str]) -> Outcome {
    weft_in(root, &Environment::empty(), args)
}

/// A scaffolded project (made by the binary: `weft new` writes into the
/// current directory, which an in-process test must not change).
fn scaffold() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(tmp.path())
        .args(["new", "demo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("demo");
    (tmp, root)
}

#[test]
fn run_writes_its_result_and_progress_to_the_given_writers() {
    let (_tmp, root) = scaffold();
    let r = weft(&root, &["run", "--json", "--no-store"]);
    let v = r.json();
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["outputs"]["total"], 42.5);
    let r = weft(&root, &["run", "--no-store"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.is_empty(), "{}", r.out);
    assert!(
        r.err.contains("[1/2] increment done") && r.err.contains("[2/2] total done"),
        "{}",
        r.err
    );
    assert!(r.err.contains("succeeded in"), "{}", r.err);
    let r = weft(&root, &["multirun", "--no-store", "--params", "start=1,2"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.err.contains("[1/2]") && r.err.contains("2 runs: 2 succeeded"),
        "{}",
        r.err
    );
    assert!(
        r.out.starts_with("run_id") && r.out.lines().count() == 3,
        "{}",
        r.out
    );
    // Help goes to the output writer, with exit 0.
    let r = weft(&root, &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.out.contains("multirun"), "{}", r.out);
}

#[test]
fn exit_codes() {
    let (_tmp, root) = scaffold();
    let failing = root.parent().unwrap().join("failing");
    std::fs::create_dir_all(&failing).unwrap();
    for entry in ["weft.toml", "conf"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(root.join(entry))
            .arg(&failing)
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(
        failing.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - {name: a, func: fail, inputs: params:start, outputs: x}\n",
    )
    .unwrap();
    let ok = 0;
    let failure = 1;
    let usage = 2;
    let cases: &[(&Path, &[&str], u8)] = &[
        (&root, &["run", "--no-store"], ok),
        (&root, &["--bogus"], usage),
        (&root, &["run", "--max-workers", "abc"], usage),
        (&root, &["run", "--params", "start=1,2"], usage),
        (&root, &["run", "--params", "noequals"], usage),
        (&root, &["run", "--load-versions", "no_colon"], usage),
        (&root, &["run", "--runner", "warp"], usage),
        (&root, &["run", "--type-check", "maybe"], usage),
        (&root, &["run", "--env", "staging"], usage),
        (&root, &["run", "--pipeline", "nope"], usage),
        (&root, &["run", "--store", "mysql://host/db"], usage),
        (&root, &["run", "--nodes", "nope"], failure),
        (&failing, &["run", "--no-store"], failure),
        (
            &root,
            &["multirun", "--policy", "sometimes", "--params", "start=1,2"],
            usage,
        ),
        (
            &root,
            &["multirun", "--runner", "warp", "--params", "start=1,2"],
            usage,
        ),
        (
            &root,
            &["multirun", "--env", "staging", "--params", "start=1,2"],
            usage,
        ),
        (
            &failing,
            &["multirun", "--no-store", "--params", "start=1,2"],
            failure,
        ),
        (&root, &["pipeline", "show", "--pipeline", "nope"], usage),
        (&root, &["pipeline", "list", "--env", "staging"], usage),
        (&root, &["config", "show", "--section", "nope"], usage),
        (&root, &["config", "show", "--json"], ok),
        (&root, &["catalog", "list", "--pipelines", "nope"], usage),
        (&root, &["viz", "--format", "png"], usage),
        (&root, &["runs", "list", "--status", "weird"], usage),
        (&root, &["runs", "list", "--store", "s3://bucket/runs"], usage),
        (&root, &["runs", "show", "no-such-run"], failure),
        (&root, &["new", "a/b"], usage),
        (&root, &["new", "say\"hi\""], usage),
    ];
    for (dir, args, expected) in cases {
        let r = weft(dir, args);
        assert_eq!(
            r.code, *expected,
            "{args:?}\nstdout: {}\nstderr: {}",
            r.out, r.err
        );
        if *expected != ok {
            assert!(!r.err.is_empty(), "{args:?} says why");
        }
    }
}

#[test]
fn every_inspection_command_speaks_json() {
    let (_tmp, root) = scaffold();
    let run = weft(&root, &["run", "--json"]).json();
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let other = weft(&root, &["run", "--json"]).json();
    let other_id = other["run_id"].as_str().unwrap().to_string();
    let v = weft(&root, &["pipeline", "list", "--json"]).json();
    assert_eq!(v["pipelines"][0]["name"], "__default__");
    assert_eq!(v["pipelines"][0]["nodes"], 2);
    let v = weft(&root, &["pipeline", "show", "--json"]).json();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    let v = weft(&root, &["config", "show", "--json", "--section", "parameters"]).json();
    assert_eq!(v, serde_json::json!({"start": 41, "offset": 0.5}));
    let v = weft(&root, &["catalog", "list", "--json"]).json();
    assert!(
        v["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "total"),
        "{v}"
    );
    let v = weft(&root, &["sessions", "list", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = weft(&root, &["runs", "list", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = weft(&root, &["runs", "show", &run_id, "--json"]).json();
    assert_eq!(v["run_id"], run_id.as_str());
    let v = weft(&root, &["runs", "compare", &run_id, &other_id, "--json"]).json();
    assert!(v.is_object(), "{v}");
    let v = weft(&root, &["viz", "--json"]).json();
    assert_eq!(
        v["nodes"][0],
        serde_json::json!({"id": "n0", "name": "increment", "func": "add_one"})
    );
    assert_eq!(v, weft(&root, &["viz", "--format", "json"]).json());
    assert_eq!(v["edges"].as_array().unwrap().len(), 5);
}

#[test]
fn env_must_exist_but_the_default_env_may_be_absent() {
    let (_tmp, root) = scaffold();
    std::fs::remove_dir_all(root.join("conf/local")).unwrap();
    let r = weft(&root, &["run", "--no-store"]);
    assert_eq!(r.code, 0, "{}", r.err);
    std::fs::create_dir_all(root.join("conf/prod")).unwrap();
    std::fs::write(root.join("conf/prod/parameters.yml"), "start: 1\n").unwrap();
    let r = weft(&root, &["run", "--no-store", "--env", "staging"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains("unknown env `staging`") && r.err.contains("envs: base, prod"),
        "{}",
        r.err
    );
    // WEFT_ENV is read from the environment handed in, the flag wins over it.
    let prod = Environment::empty().with("WEFT_ENV", "prod");
    let v = weft_in(&root, &prod, &["run", "--json", "--no-store"]).json();
    assert_eq!(v["outputs"]["total"], 2.5);
    let r = weft_in(&root, &prod, &["run", "--json", "--no-store", "--env", "local"]);
    assert_eq!(r.json()["outputs"]["total"], 42.5);
    let r = weft_in(&root, &Environment::empty().with("WEFT_ENV", "nope"), &["run"]);
    assert_eq!(r.code, 2, "{}", r.err);
}

#[test]
fn store_precedence_flag_then_environment_then_weft_toml_then_default() {
    let (tmp, root) = scaffold();
    let at = |name: &str| tmp.path().join(name);
    let toml = std::fs::read_to_string(root.join("weft.toml")).unwrap();
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[store]\nurl = \"{}\"\n", at("toml.db").display()),
    )
    .unwrap();
    let env = Environment::empty().with("WEFT_STORE_URL", at("env.db").display().to_string());
    let flag = at("flag.db").display().to_string();
    let count = |env: &Environment, store: &Path| {
        let v = weft_in(
            &root,
            env,
            &["runs", "list", "--json", "--store", &store.display().to_string()],
        )
        .json();
        v.as_array().unwrap().len()
    };
    assert_eq!(weft_in(&root, &env, &["run", "--store", &flag]).code, 0);
    assert_eq!(weft_in(&root, &env, &["run"]).code, 0);
    assert_eq!(weft_in(&root, &Environment::empty(), &["run"]).code, 0);
    let none = Environment::empty();
    assert_eq!(count(&none, &at("flag.db")), 1);
    assert_eq!(count(&none, &at("env.db")), 1);
    assert_eq!(count(&none, &at("toml.db")), 1);
    assert!(!root.join(".weft/weft.db").exists(), "the default is last");
    // `runs list` follows the same rule.
    assert_eq!(
        weft_in(&root, &env, &["runs", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // An unknown scheme is a usage error wherever it comes from.
    let bad = Environment::empty().with("WEFT_STORE_URL", "mysql://db/x");
    let r = weft_in(&root, &bad, &["run"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("unknown scheme"), "{}", r.err);
}

#[test]
fn weft_toml_runner_is_used_unless_the_flag_says_otherwise() {
    let (_tmp, root) = scaffold();
    let toml = std::fs::read_to_string(root.join("weft.toml")).unwrap();
    // A wrong weft.toml is the project's fault: a failure, naming the file's key.
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[run]\nrunner = \"warp\"\n"),
    )
    .unwrap();
    for args in [
        &["run", "--no-store"][..],
        &["multirun", "--no-store", "--params", "start=1,2"],
    ] {
        let r = weft(&root, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.err);
        assert!(
            r.err.contains("[run] runner") && r.err.contains("warp"),
            "{}",
            r.err
        );
    }
    std::fs::write(
        root.join("weft.toml"),
        format!("{toml}\n[run]\nrunner = \"thread\"\n"),
    )
    .unwrap();
    let r = weft(&root, &["multirun", "--no-store", "--params", "start=1,2"]);
    assert_eq!(r.code, 0, "{}", r.err);
    // The flag wins over weft.toml, and a wrong flag is a usage error.
    let r = weft(&root, &["run", "--no-store", "--runner", "sequential"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let r = weft(&root, &["run", "--no-store", "--runner", "warp"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("unknown runner `warp`"), "{}", r.err);
}

/// A reader that went away: every write fails with `BrokenPipe`.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn a_closed_output_writer_ends_every_command_quietly() {
    let (_tmp, root) = scaffold();
    let root_arg = root.display().to_string();
    for args in [
        &["pipeline", "show", "--json"][..],
        &["pipeline", "list"],
        &["catalog", "list"],
        &["config", "show"],
        &["viz", "--format", "dot"],
        &["runs", "list", "--json"],
        &["run", "--json", "--no-store"],
        &["multirun", "--no-store", "--params", "start=1,2"],
    ] {
        let mut argv = vec!["weft", "--project", &root_arg];
        argv.extend_from_slice(args);
        let mut err = Vec::new();
        let code = run_with(
            argv,
            &Environment::empty(),
            ProjectCode::default(),
            &mut ClosedPipe,
            &mut err,
        );
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

/// Regression (issue 8 §2): a node that panics fails its run through the
/// CLI (exit 1, the node and the panic message in the error), for `run`
/// and for `multirun` with two workers; nothing hangs.
#[test]
fn a_panicking_node_fails_run_and_multirun_cleanly() {
    let (_tmp, root) = scaffold();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - {name: bad, func: explode, inputs: params:x, outputs: y}\n",
    )
    .unwrap();
    std::fs::write(root.join("conf/base/parameters.yml"), "x: 1\n").unwrap();
    let code = || {
        let mut functions = weft_pipeline::FunctionRegistry::with_builtins();
        functions
            .register("explode", |x: &i64| -> i64 {
                if *x > 0 {
                    panic!("kaboom {x}");
                }
                *x
            })
            .unwrap();
        ProjectCode {
            functions: std::sync::Arc::new(functions),
            ..Default::default()
        }
    };
    let invoke = |args: &[&str]| {
        let mut argv = vec!["weft".to_string(), "--project".into(), root.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let exit = run_with(argv, &Environment::empty(), code(), &mut out, &mut err);
        (
            exit,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (exit, out, err) = invoke(&["run", "--json"]);
    assert_eq!(exit, 1, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} / {err}"));
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["node"], "bad");
    assert!(v["error"]["causes"].to_string().contains("kaboom 1"), "{v}");
    let (exit, out, err) = invoke(&[
        "multirun",
        "--json",
        "--params",
        "x=1,2,3",
        "--max-workers",
        "2",
        "--policy",
        "continue",
    ]);
    assert_eq!(exit, 1, "{out}\n{err}");
    let runs: Value = serde_json::from_str(&out).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r["status"] == "failed" && r["error"]["node"] == "bad"),
        "{runs:?}"
    );
}
