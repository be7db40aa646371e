//! `weft run --inputs FILE`: data injected for one run.

use std::process::Command;

#[test]
fn inputs_file_feeds_free_inputs_and_bad_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("weft.toml"), "[project]\nname = \"inj\"\n").unwrap();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - name: answer\n      func: add_one\n      inputs: request\n      outputs: response\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/base")).unwrap();
    std::fs::write(root.join("in.json"), r#"{"request": 41}"#).unwrap();
    std::fs::write(root.join("bad.json"), "{\"request\": ").unwrap();
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["run", "--no-store", "--json", "--project"])
            .arg(root)
            .args(["--inputs", file])
            .env_remove("WEFT_SERVER")
            .output()
            .unwrap()
    };
    let out = run(root.join("in.json").to_str().unwrap());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["outputs"]["response"], 42, "{result}");
    let out = run(root.join("bad.json").to_str().unwrap());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("line 1"), "{err}");
}
