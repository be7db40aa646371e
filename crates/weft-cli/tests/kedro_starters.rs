//! The `conf/` of Kedro's official starters (copied into
//! `tests/fixtures/kedro-starters`) through `weft catalog list`: every
//! entry either loads or is refused with the Python-only message, which
//! says "Python" and what to use instead.

use std::collections::BTreeSet;
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

/// A scaffolded project whose `conf/` is the starter's.
fn starter(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["new", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("demo");
    std::fs::remove_file(root.join("conf/base/catalog.yml")).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kedro-starters")
        .join(name)
        .join("conf");
    copy_dir(&fixture, &root.join("conf"));
    (tmp, root)
}

/// The entries `weft catalog list` refuses, each with its message.
fn refusals(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|l| {
            let name = l.split('`').nth(1).unwrap_or_default().to_string();
            (name, l.to_string())
        })
        .collect()
}

/// Removes `names` from every catalog file of the project.
fn drop_entries(root: &Path, names: &BTreeSet<&str>) {
    for file in std::fs::read_dir(root.join("conf/base")).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("catalog") {
            continue;
        }
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let kept: serde_json::Map<_, _> = doc
            .into_iter()
            .filter(|(k, _)| !names.contains(k.as_str()))
            .collect();
        std::fs::write(&path, serde_json::to_string(&kept).unwrap()).unwrap();
    }
}

fn check(name: &str, python_only: &[&str], accepted: &[&str]) {
    let (_tmp, root) = starter(name);
    let out = weft(&root, &["catalog", "list", "--json"]);
    let refused = refusals(&out);
    let expected: BTreeSet<&str> = python_only.iter().copied().collect();
    if expected.is_empty() {
        assert!(out.status.success(), "{name}: {}", text(&out));
    } else {
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
    }
    let got: BTreeSet<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, expected, "{name}: {}", text(&out));
    for (entry, message) in &refused {
        assert!(
            message.contains("Python") && message.contains("weft (Rust)"),
            "{name}: `{entry}` refused without the Python-only message: {message}"
        );
    }
    // Without the Python-only entries, every other entry loads.
    drop_entries(&root, &expected);
    let out = weft(&root, &["catalog", "list", "--json"]);
    assert!(
        out.status.success(),
        "{name} without its Python-only entries: {}",
        text(&out)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    for entry in accepted {
        assert!(
            listed.contains(&format!("\"{entry}\"")),
            "{name}: `{entry}` not listed: {listed}"
        );
    }
}

#[test]
fn spaceflights_pandas_loads_whole() {
    check(
        "spaceflights-pandas",
        &[],
        &[
            "companies",
            "reviews",
            "shuttles",
            "preprocessed_companies",
            "preprocessed_shuttles",
            "model_input_table",
            "regressor",
        ],
    );
}

#[test]
fn spaceflights_pyspark_refuses_only_its_spark_tables_and_says_python() {
    check(
        "spaceflights-pyspark",
        &[
            "companies",
            "reviews",
            "shuttles@spark",
            "preprocessed_companies",
            "preprocessed_shuttles",
            "preprocessed_reviews",
            "model_input_table@spark",
        ],
        &[
            "shuttles_excel",
            "shuttles@csv",
            "model_input_table@pandas",
            "regressor",
        ],
    );
}

#[test]
fn support_agent_langgraph_refuses_only_its_python_objects_and_says_python() {
    check(
        "support-agent-langgraph",
        &[
            "db_engine",
            "llm",
            "tool_prompt",
            "response_prompt",
            "intent_prompt_langfuse",
            "intent_tracer_langfuse",
        ],
        &["session_table", "user_data", "docs"],
    );
}
