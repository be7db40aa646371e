//! `weft multirun` sweeps and `weft run --params` values through the
//! binary: Hydra's grammar, the run limit, constant overrides in every run.

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

fn scaffold() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["new", "demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("demo");
    (tmp, root)
}

#[test]
fn huge_sweeps_are_refused_before_anything_runs() {
    let (_tmp, root) = scaffold();
    // This aborted the process trying to allocate 720 GB.
    let out = weft(
        &root,
        &[
            "multirun",
            "--no-store",
            "--params",
            "start=range(0,100000)",
            "--params",
            "offset=range(0,100000)",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // A sweep too large is the caller's input: a usage error (exit 2).
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("10000000000 runs") && err.contains("--max-runs"),
        "{err}"
    );
    // Raising the limit lets a sweep over it run.
    let out = weft(
        &root,
        &[
            "multirun",
            "--no-store",
            "--json",
            "--params",
            "start=range(3)",
            "--max-runs",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 runs, more than the limit of 2"));
    let out = weft(
        &root,
        &[
            "multirun",
            "--no-store",
            "--json",
            "--params",
            "start=range(3)",
            "--max-runs",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn malformed_sweeps_are_usage_errors_naming_the_override() {
    let (_tmp, root) = scaffold();
    let out = weft(&root, &["multirun", "--no-store", "--params", "start=1,,2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("`start=1,,2`") && err.contains("column 9"), "{err}");
}

#[test]
fn quoted_lists_and_constants_reach_every_run() {
    let (_tmp, root) = scaffold();
    let out = weft(
        &root,
        &[
            "multirun",
            "--no-store",
            "--json",
            "--params",
            "start=1,2,offset=10",
            "--params",
            "tag='a,b'",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let totals: Vec<f64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outputs"]["total"].as_f64().unwrap())
        .collect();
    assert_eq!(totals.len(), 2);
    // offset=10 is a constant override: part of both runs.
    assert!(totals.iter().all(|t| *t > 10.0), "{totals:?}");
    // `weft run --params` takes lists now (failed with an error about `2]`).
    let out = weft(
        &root,
        &[
            "config",
            "show",
            "--section",
            "parameters",
            "--params",
            "l=[1,2],s='x,y'",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let params: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&params["l"], &params["s"]),
        (&serde_json::json!([1, 2]), &serde_json::json!("x,y"))
    );
    let out = weft(&root, &["run", "--no-store", "--params", "start=1,extra=[1,2]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
