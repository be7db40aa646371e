//! The project's pipeline tests (`tests/*.yml`), run through the real
//! `spaceflights` binary's `weft test`, plus the cyclic `sqrt2` pipeline
//! through `weft run`: exit codes 0 / 1 / 2 and expected-vs-got output.

use std::path::{Path, PathBuf};
use std::process::Command;

fn project_copy() -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spaceflights");
    for dir in ["data", "conf/base", "conf/local", "tests"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for f in [
        "weft.toml",
        "pipelines.yml",
        "conf/base/catalog.yml",
        "conf/base/parameters.yml",
        "tests/pipelines.yml",
    ] {
        std::fs::copy(src.join(f), root.join(f)).unwrap();
    }
    (tmp, root)
}

fn weft(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spaceflights"))
        .arg("--project")
        .arg(root)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_pipeline_tests_pass() {
    let (_tmp, root) = project_copy();
    let (code, out, err) = weft(&root, &["test"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("PASS newton's cycle converges to sqrt(2)"), "{out}");
    assert!(
        out.contains("PASS a failing step stops the flow before the join"),
        "{out}"
    );
    assert!(out.contains("4 cases: 4 passed, 0 failed (1 files)"), "{out}");
}

#[test]
fn a_failing_case_prints_expected_and_got_and_exits_1() {
    let (_tmp, root) = project_copy();
    std::fs::write(
        root.join("tests/wrong.yml"),
        "cases:\n  - name: wrong root\n    pipeline: sqrt2\n    expect:\n      outputs: {x_next: 1.5}\n      iterations: {newton: 3}\n      order: [newton, start]\n",
    )
    .unwrap();
    let (code, out, err) = weft(&root, &["test"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("tests/wrong.yml: FAIL wrong root"), "{out}");
    assert!(
        out.contains("output `x_next`:\n    expected: 1.5\n    got:      1.41421356237309"),
        "{out}"
    );
    assert!(
        out.contains("iterations of cycle `newton`:\n    expected: 3\n    got:      6"),
        "{out}"
    );
    assert!(
        out.contains("order:\n    expected: [newton, start]\n    got:      [start, newton]"),
        "{out}"
    );
    assert!(out.contains("5 cases: 4 passed, 1 failed (2 files)"), "{out}");
}

#[test]
fn a_case_that_cannot_run_is_bad_input_exit_2() {
    let (_tmp, root) = project_copy();
    std::fs::write(
        root.join("tests/bad.yml"),
        "cases:\n  - name: typo\n    pipeline: data_processing\n    replace: {preprocess_compnies: {error: x}}\n",
    )
    .unwrap();
    let (code, out, err) = weft(&root, &["test", "tests/bad.yml"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("case `typo`"), "{err}");
    assert!(
        err.contains("`replace` names unknown node `preprocess_compnies`"),
        "{err}"
    );
    assert!(
        err.contains("the pipeline needs input `companies`: give it under `inputs`"),
        "{err}"
    );
    std::fs::write(root.join("tests/bad.yml"), "cases:\n  - {name: x, expct: {}}\n").unwrap();
    let (code, _, err) = weft(&root, &["test", "tests/bad.yml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.yml: case #1 (`x`): unknown field `expct`"),
        "{err}"
    );
}

#[test]
fn the_sqrt2_cycle_runs_and_its_iterations_are_in_the_json_result() {
    let (_tmp, root) = project_copy();
    let (code, out, err) = weft(&root, &["run", "--json", "--no-store", "--pipeline", "sqrt2"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "succeeded");
    let timings = result["node_timings"]
        .as_array()
        .expect("node_timings in the JSON result");
    let newton = timings.iter().find(|t| t["node"] == "newton").unwrap();
    assert_eq!(newton["cycle"]["converged"], true, "{newton}");
    assert_eq!(newton["cycle"]["iterations"], 6, "{newton}");
    assert_eq!(newton["cycle"]["iteration_ms"].as_array().unwrap().len(), 6);
}
