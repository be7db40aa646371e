//! Command nodes with real Python scripts in a temporary project.

mod common;

use std::path::{Path, PathBuf};

use common::write;
use weft_core::RunStatus;
use weft_session::{Policy, RunConfig, ServiceOptions, ServiceSession, Session, SessionOptions, StoreChoice};

const TIMES_TEN: &str = r#"
import json, sys
src, dst, factor = sys.argv[1], sys.argv[2], int(sys.argv[3])
value = json.load(open(src))
print(f"read {value} from {src}")
print("a warning on stderr", file=sys.stderr)
json.dump(value * factor, open(dst, "w"))
"#;

const FAILS: &str = r#"
import sys
for i in range(25):
    print(f"err-{i:02}", file=sys.stderr)
sys.exit(3)
"#;

const WRITES_NOTHING: &str = "print('forgot to write my output')\n";

const SLEEPS: &str = "import time\ntime.sleep(60)\n";

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: first
      func: add_one
      inputs: params:start
      outputs: a
    - name: scale
      command: [python3, scripts/times_ten.py, "{inputs.a}", "{outputs.b}", "{params.factor}"]
      inputs: [a]
      outputs: [b]
    - name: last
      func: add_one
      inputs: b
      outputs: c
memory:
  nodes:
    - name: make
      func: add_one
      inputs: params:start
      outputs: m1
    - name: scale_mem
      command: [python3, times_ten.py, "{inputs.x}", "{outputs.y}", "{params.factor}"]
      cwd: scripts
      env: {UNUSED: "{params.factor}"}
      inputs: {x: m1}
      outputs: {y: m2}
fails:
  nodes:
    - name: bad
      command: [python3, scripts/fails.py]
      outputs: nothing
lazy:
  nodes:
    - name: forgetful
      command: [python3, scripts/writes_nothing.py, "{outputs.out}"]
      outputs: {out: b}
missing_program:
  nodes:
    - name: ghost
      command: [definitely-not-a-program-xyz, "--flag"]
slow:
  nodes:
    - name: sleeper
      command: [python3, scripts/sleeps.py]
      timeout: 300ms
"#;

fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"cmd\"\n");
    write(&root, "pipelines.yml", PIPELINES);
    write(&root, "conf/base/parameters.yml", "start: 1\nfactor: 10\n");
    write(
        &root,
        "conf/base/catalog.yml",
        "a:\n  type: json.JSONDataset\n  filepath: data/a.json\nb:\n  type: json.JSONDataset\n  filepath: data/b.json\n  versioned: true\n",
    );
    write(&root, "scripts/times_ten.py", TIMES_TEN);
    write(&root, "scripts/fails.py", FAILS);
    write(&root, "scripts/writes_nothing.py", WRITES_NOTHING);
    write(&root, "scripts/sleeps.py", SLEEPS);
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    (dir, root)
}

fn run(root: &Path, pipeline: &str, params: serde_json::Value) -> weft_core::RunResult {
    let mut s = Session::create(
        root,
        SessionOptions {
            store: StoreChoice::Disabled,
            ..Default::default()
        },
    )
    .unwrap();
    let r = s.run(RunConfig {
        pipeline_names: vec![pipeline.into()],
        runtime_params: params,
        ..Default::default()
    });
    match r {
        Ok(r) => r,
        Err(weft_session::SessionError::RunFailed(r)) => *r,
        Err(e) => panic!("{e}"),
    }
}

fn error_text(r: &weft_core::RunResult) -> String {
    assert_eq!(r.status, RunStatus::Failed, "expected a failure");
    let e = r.error.as_ref().unwrap();
    format!("{} | {}", e.message, e.causes.join(" | "))
}

#[test]
fn rust_then_python_then_rust_with_a_versioned_output() {
    let (_tmp, root) = project();
    let r = run(&root, "__default__", serde_json::json!({"start": 4}));
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    // (4 + 1) * 10 + 1
    assert_eq!(r.outputs["c"].to_json().unwrap(), serde_json::json!(51));
    // The command's output is saved and versioned under the run id.
    let version = &r.saved_versions["b"];
    assert_eq!(version, &r.run_id);
    let file = root.join("data/b.json").join(version).join("b.json");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "50");
    // No temporary file is left next to it.
    let left: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn memory_inputs_and_outputs_cross_as_json_files_and_params_as_values() {
    let (_tmp, root) = project();
    let r = run(&root, "memory", serde_json::json!({"start": 2, "factor": 7}));
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    assert_eq!(r.outputs["m2"].to_json().unwrap(), serde_json::json!(21));
}

#[test]
fn a_non_zero_exit_fails_the_node_with_the_code_and_the_stderr_tail() {
    let (_tmp, root) = project();
    let r = run(&root, "fails", serde_json::json!({}));
    let err = error_text(&r);
    assert_eq!(r.error.as_ref().unwrap().node.as_deref(), Some("bad"));
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("err-24") && err.contains("err-05"), "{err}");
    assert!(!err.contains("err-04"), "only the last 20 lines: {err}");
}

#[test]
fn an_output_the_command_did_not_write_is_a_failure_naming_it() {
    let (_tmp, root) = project();
    let r = run(&root, "lazy", serde_json::json!({}));
    let err = error_text(&r);
    assert!(err.contains("did not write output `b` (expected at"), "{err}");
    assert!(err.contains("b.json"), "{err}");
    // Nothing was recorded as saved, and no version folder holds a file.
    assert!(r.saved_versions.is_empty(), "{:?}", r.saved_versions);
}

#[test]
fn a_missing_executable_names_the_node_and_the_program() {
    let (_tmp, root) = project();
    let r = run(&root, "missing_program", serde_json::json!({}));
    let err = error_text(&r);
    assert!(err.contains("node `ghost`"), "{err}");
    assert!(
        err.contains("program `definitely-not-a-program-xyz` not found"),
        "{err}"
    );
}

#[test]
fn a_timeout_kills_the_child_and_fails_the_node() {
    let (_tmp, root) = project();
    let r = run(&root, "slow", serde_json::json!({}));
    let err = error_text(&r);
    assert!(
        err.contains("exceeded its timeout of 300ms and was killed"),
        "{err}"
    );
}

#[test]
fn overlapping_runs_write_isolated_command_outputs() {
    let (_tmp, root) = project();
    // Make `b` non-versioned so that isolation has to scope it.
    write(
        &root,
        "conf/base/catalog.yml",
        "a:\n  type: json.JSONDataset\n  filepath: data/a.json\nb:\n  type: json.JSONDataset\n  filepath: data/b.json\n",
    );
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: SessionOptions {
                store: StoreChoice::Disabled,
                ..Default::default()
            },
            max_workers: Some(2),
            history_limit: None,
        },
    )
    .unwrap();
    let configs = (0..4)
        .map(|i| RunConfig {
            runtime_params: serde_json::json!({"start": i * 100}),
            ..Default::default()
        })
        .collect();
    let results = s.run_all(configs, &Policy::default(), None).unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
        let expected = (i as i64 * 100 + 1) * 10;
        assert_eq!(r.outputs["c"].to_json().unwrap(), serde_json::json!(expected + 1));
        let b = &r.scoped_outputs["b"];
        assert!(b.contains(&r.run_id), "{b}");
        assert_eq!(std::fs::read_to_string(b).unwrap().trim(), expected.to_string());
    }
    assert!(!root.join("data/b.json").exists(), "no run wrote the shared path");
}
