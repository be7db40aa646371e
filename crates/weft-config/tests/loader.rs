//! Kedro's config rules on real files.

use std::path::Path;

use serde_json::json;
use weft_config::{ConfigError, ConfigLoader, MergeStrategy};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn conf() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("base")).unwrap();
    dir
}

fn loader(dir: &Path, env: Option<&str>) -> ConfigLoader {
    ConfigLoader::new(dir, env, serde_json::Value::Null)
}

#[test]
fn env_overrides_base_destructively_by_default_or_softly() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "model: {lr: 0.1, depth: 3}\nseed: 1\n",
    );
    write(d.path(), "local/parameters.yml", "model: {lr: 0.5}\n");
    let l = loader(d.path(), None);
    assert_eq!(l.env(), "local");
    assert_eq!(
        l.get("parameters").unwrap(),
        json!({"model": {"lr": 0.5}, "seed": 1})
    );
    let soft = loader(d.path(), None).with_merge_strategy("parameters", MergeStrategy::Soft);
    assert_eq!(
        soft.get("parameters").unwrap(),
        json!({"model": {"lr": 0.5, "depth": 3}, "seed": 1})
    );
    // another env, absent folder: base only
    assert_eq!(
        loader(d.path(), Some("prod")).get("parameters").unwrap()["model"]["depth"],
        3
    );
}

#[test]
fn duplicate_keys_within_one_env_name_both_files_all_at_once() {
    let d = conf();
    write(
        d.path(),
        "base/catalog.yml",
        "a: {type: MemoryDataset}\nb: {type: MemoryDataset}\n",
    );
    write(
        d.path(),
        "base/catalog_more.yml",
        "a: {type: MemoryDataset}\nb: {type: MemoryDataset}\n",
    );
    let err = loader(d.path(), None).get("catalog").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("duplicate key `a`") && msg.contains("duplicate key `b`"),
        "{msg}"
    );
    assert!(
        msg.contains("base/catalog.yml") && msg.contains("base/catalog_more.yml"),
        "{msg}"
    );
}

#[test]
fn parameters_duplicates_are_checked_on_dotted_leaves() {
    let d = conf();
    write(d.path(), "base/parameters.yml", "model: {x: 1}\n");
    write(d.path(), "base/parameters/extra.yml", "model: {y: 2}\n");
    assert_eq!(
        loader(d.path(), None).get("parameters").unwrap(),
        json!({"model": {"x": 1, "y": 2}})
    );
    write(d.path(), "base/parameters/clash.yml", "model: {x: 3}\n");
    let msg = loader(d.path(), None).get("parameters").unwrap_err().to_string();
    assert!(msg.contains("duplicate parameter `model.x`"), "{msg}");
    assert!(
        msg.contains("parameters.yml") && msg.contains("clash.yml"),
        "{msg}"
    );
}

#[test]
fn underscore_keys_are_dropped_but_usable_as_anchors_and_references() {
    let d = conf();
    write(
        d.path(),
        "base/catalog.yml",
        "_csv: &csv {type: csv.CSVDataset}\n_root: data/01_raw\ncompanies:\n  <<: *csv\n  filepath: ${_root}/companies.csv\n",
    );
    let v = loader(d.path(), None).get("catalog").unwrap();
    assert_eq!(
        v,
        json!({"companies": {"type": "csv.CSVDataset", "filepath": "data/01_raw/companies.csv"}})
    );
}

#[test]
fn globals_and_runtime_params_interpolate_with_types_and_defaults() {
    let d = conf();
    write(d.path(), "base/globals.yml", "n: 3\nbucket: s3://b\n");
    write(d.path(), "local/globals.yml", "bucket: file:///tmp\n");
    write(
        d.path(),
        "base/parameters.yml",
        "n: ${globals:n}\npath: ${globals:bucket}/x\nmissing: ${globals:nope,7}\nlr: ${runtime_params:lr,0.01}\nname: ${runtime_params:who,anon}\n",
    );
    let l = ConfigLoader::new(d.path(), None, json!({"lr": 0.5}));
    let p = l.get("parameters").unwrap();
    assert_eq!(
        p,
        json!({"n": 3, "path": "file:///tmp/x", "missing": 7, "lr": 0.5, "name": "anon"})
    );
    // parameters(): runtime params are merged on top, the loader's copy untouched
    let merged = l.parameters().unwrap();
    assert_eq!(merged["lr"], 0.5);
    assert_eq!(l.runtime_params(), &json!({"lr": 0.5}));
}

#[test]
fn env_resolver_only_in_credentials() {
    let d = conf();
    // SAFETY-free: the variable name is unique to this test.
    let var = "WEFT_CONFIG_TEST_SECRET_5821";
    write(
        d.path(),
        "base/credentials.yml",
        &format!("db:\n  password: ${{env:{var},fallback}}\n"),
    );
    assert_eq!(
        loader(d.path(), None).get("credentials").unwrap()["db"]["password"],
        "fallback"
    );
    write(d.path(), "base/parameters.yml", &format!("x: ${{env:{var},1}}\n"));
    let msg = loader(d.path(), None).get("parameters").unwrap_err().to_string();
    assert!(
        msg.contains("the env resolver is only allowed in credentials"),
        "{msg}"
    );
    assert!(msg.contains("parameters.yml"), "{msg}");
}

#[test]
fn missing_references_and_cycles_are_reported_with_key_and_file() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "a: ${globals:nope}\nb: ${c}\nc: ${b}\nd: ${runtime_params:x}\n",
    );
    let err = loader(d.path(), None).get("parameters").unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0]
            .to_string()
            .contains("`a` in parameters: cannot resolve `${globals:nope}`")
            && problems[0].to_string().contains("parameters.yml"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("interpolation cycle")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("no runtime parameter `x`")),
        "{problems:?}"
    );
}

#[test]
fn yaml_syntax_errors_report_file_and_line() {
    let d = conf();
    write(d.path(), "base/catalog.yml", "ok: 1\nbad: [1, 2\nnext: 3\n");
    let err = loader(d.path(), None).get("catalog").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("base/catalog.yml:"), "{msg}");
}

#[test]
fn json_files_and_recursive_patterns() {
    let d = conf();
    write(d.path(), "base/parameters/model.yml", "model: {depth: 3}\n");
    write(d.path(), "base/parameters_data.json", r#"{"data": {"rows": 10}}"#);
    write(d.path(), "base/sub/deep/parameters.yml", "deep: true\n");
    write(d.path(), "base/.hidden/parameters.yml", "hidden: true\n");
    write(d.path(), "base/catalog.yml", "x: {type: MemoryDataset}\n");
    let p = loader(d.path(), None).get("parameters").unwrap();
    assert_eq!(
        p,
        json!({"model": {"depth": 3}, "data": {"rows": 10}, "deep": true})
    );
}

#[test]
fn missing_base_is_an_error_and_top_level_must_be_a_map() {
    let d = tempfile::tempdir().unwrap();
    let err = loader(d.path(), None).get("catalog").unwrap_err();
    assert!(matches!(err, ConfigError::MissingBase { .. }), "{err}");
    let d = conf();
    write(d.path(), "base/parameters.yml", "- 1\n- 2\n");
    let msg = loader(d.path(), None).get("parameters").unwrap_err().to_string();
    assert!(msg.contains("top level must be a map"), "{msg}");
}
