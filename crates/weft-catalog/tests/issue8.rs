//! Issue 8: run-scoped outputs, availability checks, load_versions
//! validation, data safety, transcoded versioning, located config errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_catalog::{
    BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry, Fault, RunScope,
};
use weft_pipeline::{Data, DataType};

fn config(catalog: Value) -> CatalogConfig {
    CatalogConfig::parse(&catalog, &json!({}), &DatasetTypeRegistry::with_builtins()).unwrap()
}

fn opts(dir: &Path, version: &str) -> BuildOptions {
    BuildOptions {
        project_dir: dir.to_path_buf(),
        save_version: version.into(),
        ..Default::default()
    }
}

fn scoped(dir: &Path, version: &str, scope: &Path, names: &[&str]) -> BuildOptions {
    BuildOptions {
        run_scope: Some(RunScope {
            dir: scope.to_path_buf(),
            datasets: names.iter().map(|s| s.to_string()).collect(),
        }),
        ..opts(dir, version)
    }
}

fn pinned(dir: &Path, version: &str, pins: &[(&str, &str)]) -> BuildOptions {
    BuildOptions {
        load_versions: pins.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..opts(dir, version)
    }
}

fn json_of(c: &Catalog, name: &str) -> Value {
    c.load(name, None).unwrap().to_json().unwrap()
}

// ---- 1. run-scoped outputs ----

#[test]
fn run_scope_moves_unversioned_persisted_datasets_only() {
    let project = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("abs.json");
    let cfg = config(json!({
        "inter": {"type": "json.JSONDataset", "filepath": "data/inter.json"},
        "{name}_csv": {"type": "csv.CSVDataset", "filepath": "data/{name}.csv"},
        "cars@json": {"type": "json.JSONDataset", "filepath": "data/cars.json"},
        "cars@text": {"type": "text.TextDataset", "filepath": "data/cars.json"},
        "model": {"type": "json.JSONDataset", "filepath": "data/model.json", "versioned": true},
        "mem": {"type": "MemoryDataset"},
        "abs": {"type": "json.JSONDataset", "filepath": abs.to_str().unwrap()},
        "parts": {"type": "PartitionedDataset", "path": "data/parts", "dataset": "JSONDataset",
                  "filename_suffix": ".json"},
        "other": {"type": "json.JSONDataset", "filepath": "data/other.json"},
    }));
    let scope = project.path().join("runs/r1");
    let c = cfg
        .build(&scoped(
            project.path(),
            "r1",
            &scope,
            &[
                "inter",
                "x_csv",
                "cars@json",
                "model",
                "mem",
                "abs",
                "parts",
                "params:a",
            ],
        ))
        .unwrap();
    c.save("inter", Data::new(json!({"v": 1}))).unwrap();
    c.save("x_csv", Data::new(json!([{"a": 1}]))).unwrap();
    c.save("cars@json", Data::new(json!({"n": 1}))).unwrap();
    c.save("model", Data::new(json!(3))).unwrap();
    c.save("mem", Data::new(json!(4))).unwrap();
    c.save("abs", Data::new(json!(5))).unwrap();
    c.save("parts", Data::new(json!({"p1": 1}))).unwrap();
    c.save("other", Data::new(json!(6))).unwrap();

    assert!(scope.join("data/inter.json").is_file());
    assert!(!project.path().join("data/inter.json").exists());
    assert!(scope.join("data/x.csv").is_file());
    assert!(scope.join("data/cars.json").is_file());
    assert!(scope.join("data/parts/p1.json").is_file());
    let abs_rel: PathBuf = abs.components().skip(1).collect();
    assert!(
        scope.join("_abs").join(&abs_rel).is_file(),
        "{}",
        abs_rel.display()
    );
    assert!(!abs.exists());
    // Versioned, memory and unlisted datasets are unchanged.
    assert!(project.path().join("data/model.json/r1/model.json").is_file());
    assert!(project.path().join("data/other.json").is_file());
    // Both sides of a transcoded pair move together.
    assert_eq!(
        c.load("cars@text", None)
            .unwrap()
            .downcast_ref::<String>()
            .unwrap()
            .trim(),
        r#"{"n":1}"#
    );
    assert_eq!(json_of(&c, "inter"), json!({"v": 1}));

    let info = c.describe("inter").unwrap();
    assert_eq!(
        info.filepath.as_deref(),
        Some(scope.join("data/inter.json").to_str().unwrap())
    );
    let listed = c.list();
    let x = listed.iter().find(|i| i.name == "x_csv").unwrap();
    assert_eq!(
        x.filepath.as_deref(),
        Some(scope.join("data/x.csv").to_str().unwrap())
    );

    let paths = c.scoped_paths();
    let names: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["abs", "cars@json", "cars@text", "inter", "parts", "x_csv"])
    );
    assert_eq!(paths["inter"], scope.join("data/inter.json"));
    assert_eq!(paths["cars@text"], scope.join("data/cars.json"));
}

#[test]
fn two_scoped_runs_of_one_config_never_see_each_other() {
    let project = tempfile::tempdir().unwrap();
    let cfg = config(json!({
        "inter": {"type": "json.JSONDataset", "filepath": "data/inter.json"},
    }));
    let a = cfg
        .build(&scoped(
            project.path(),
            "a",
            &project.path().join("runs/a"),
            &["inter"],
        ))
        .unwrap();
    let b = cfg
        .build(&scoped(
            project.path(),
            "b",
            &project.path().join("runs/b"),
            &["inter"],
        ))
        .unwrap();
    a.save("inter", Data::new(json!(1))).unwrap();
    b.save("inter", Data::new(json!(2))).unwrap();
    assert_eq!(json_of(&a, "inter"), json!(1));
    assert_eq!(json_of(&b, "inter"), json!(2));
    // An unscoped run still shares the configured file (and sees neither).
    let shared = cfg.build(&opts(project.path(), "c")).unwrap();
    assert!(!shared.exists("inter").unwrap());
}

#[test]
fn is_shared_file_answers_from_the_config() {
    let cfg = config(json!({
        "inter": {"type": "json.JSONDataset", "filepath": "data/inter.json"},
        "{name}_csv": {"type": "csv.CSVDataset", "filepath": "data/{name}.csv"},
        "{name}_v": {"type": "json.JSONDataset", "filepath": "data/{name}.json", "versioned": true},
        "model": {"type": "json.JSONDataset", "filepath": "data/model.json", "versioned": true},
        "mem": {"type": "MemoryDataset"},
        "parts": {"type": "PartitionedDataset", "path": "data/parts", "dataset": "JSONDataset"},
    }));
    assert!(cfg.is_shared_file("inter"));
    assert!(cfg.is_shared_file("x_csv"));
    assert!(cfg.is_shared_file("parts"));
    assert!(!cfg.is_shared_file("x_v"));
    assert!(!cfg.is_shared_file("model"));
    assert!(!cfg.is_shared_file("mem"));
    assert!(!cfg.is_shared_file("undeclared"));
    assert!(!cfg.is_shared_file("params:a"));
    assert!(cfg.is_persisted("model"));
    assert!(!cfg.is_persisted("mem"));
}

// ---- 2. free-input availability ----

#[test]
fn check_available_names_every_missing_input() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("data/m.json/v1")).unwrap();
    std::fs::write(project.path().join("data/m.json/v1/m.json"), "1").unwrap();
    std::fs::write(project.path().join("here.json"), "1").unwrap();
    let cfg = config(json!({
        "here": {"type": "json.JSONDataset", "filepath": "here.json"},
        "gone": {"type": "json.JSONDataset", "filepath": "gone.json"},
        "m": {"type": "json.JSONDataset", "filepath": "data/m.json", "versioned": true},
        "never": {"type": "json.JSONDataset", "filepath": "data/never.json", "versioned": true},
        "empty": {"type": "MemoryDataset"},
        "parts": {"type": "PartitionedDataset", "path": "nothing", "dataset": "JSONDataset"},
    }));
    let mut o = opts(project.path(), "run");
    o.parameters = json!({"a": 1});
    let c = cfg.build(&o).unwrap();
    let missing = c.check_available(&[
        "here",
        "gone",
        "m",
        "never",
        "empty",
        "params:a",
        "parts",
        "undeclared",
    ]);
    let by: BTreeMap<&str, &weft_catalog::Unavailable> =
        missing.iter().map(|u| (u.dataset.as_str(), u)).collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        ["empty", "gone", "never", "parts", "undeclared"]
    );
    assert_eq!(
        by["gone"].path.as_deref(),
        Some(project.path().join("gone.json").as_path())
    );
    assert!(
        by["gone"].reason.contains("does not exist"),
        "{}",
        by["gone"].reason
    );
    assert!(
        by["never"].reason.contains("no version"),
        "{}",
        by["never"].reason
    );
    assert!(by["empty"].reason.contains("holds no data"));
    assert!(by["parts"].reason.contains("folder does not exist"));

    // A pinned version: present is available, absent is named.
    let ok = cfg.build(&pinned(project.path(), "r2", &[("m", "v1")])).unwrap();
    assert!(ok.check_available(&["m"]).is_empty());
    let bad = cfg.build(&pinned(project.path(), "r3", &[("m", "v9")])).unwrap();
    let u = bad.check_available(&["m"]);
    assert_eq!(u.len(), 1);
    assert!(u[0].reason.contains("pinned version v9"), "{}", u[0].reason);
    assert_eq!(
        u[0].path.as_deref(),
        Some(project.path().join("data/m.json/v9/m.json").as_path())
    );
    // A memory dataset counts once it holds data.
    c.save("empty", Data::new(1i64)).unwrap();
    assert!(c.check_available(&["empty"]).is_empty());
}

// ---- 3. load_versions validation ----

#[test]
fn load_versions_are_validated_all_at_once() {
    let project = tempfile::tempdir().unwrap();
    let cfg = config(json!({
        "m": {"type": "json.JSONDataset", "filepath": "m.json", "versioned": true},
        "plain": {"type": "json.JSONDataset", "filepath": "plain.json"},
        "{name}_v": {"type": "json.JSONDataset", "filepath": "{name}.json", "versioned": true},
    }));
    let err = cfg
        .build(&pinned(
            project.path(),
            "r",
            &[
                ("m", "../etc"),
                ("a_v", "x/y"),
                ("b_v", "x\\y"),
                ("c_v", ""),
                ("ghost", "v1"),
                ("plain", "v1"),
            ],
        ))
        .err()
        .unwrap();
    assert_eq!(err.fault(), Fault::Config);
    let CatalogError::LoadVersions { problems } = &err else {
        panic!("{err}")
    };
    let got: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.dataset.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a_v", "x/y"),
            ("b_v", "x\\y"),
            ("c_v", ""),
            ("ghost", "v1"),
            ("m", "../etc"),
            ("plain", "v1")
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`ghost` = `v1`: the catalog has no such dataset"),
        "{msg}"
    );
    assert!(
        msg.contains("`plain` = `v1`: the dataset is not versioned"),
        "{msg}"
    );
    assert!(
        msg.contains("`m` = `../etc`: a version must not contain"),
        "{msg}"
    );
    // Valid pins (explicit and pattern names) build.
    cfg.build(&pinned(
        project.path(),
        "r",
        &[("m", "2026-01-01T00.00.00.000000Z-0a1b2c3d"), ("z_v", "v")],
    ))
    .unwrap();
}

// ---- 4. data safety ----

#[test]
fn csv_with_a_repeated_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "a,b,a\n1,2,3\n").unwrap();
    let c = config(json!({"d": {"type": "CSVDataset", "filepath": "d.csv"}}))
        .build(&opts(dir.path(), "v"))
        .unwrap();
    let err = c
        .load("d", Some(&DataType::of::<Vec<BTreeMap<String, i64>>>()))
        .unwrap_err();
    let CatalogError::DuplicateColumn {
        column,
        first,
        second,
        path,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((column.as_str(), *first, *second), ("a", 1, 3));
    assert_eq!(path, &dir.path().join("d.csv"));
    assert_eq!(err.fault(), Fault::Data);
    assert!(err.to_string().contains("d.csv"), "{err}");
}

#[cfg(unix)]
#[test]
fn saves_write_through_symlinks_and_never_replace_non_files() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("real")).unwrap();
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(p.join("real/target.json"), "0").unwrap();
    symlink(p.join("real/target.json"), p.join("data/link.json")).unwrap();
    symlink("../real/dangling.json", p.join("data/dangling.json")).unwrap();
    std::fs::create_dir_all(p.join("data/dir.json")).unwrap();
    symlink(p.join("real"), p.join("data/to_dir.json")).unwrap();
    let fifo = p.join("data/fifo.json");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let c = config(json!({
        "link": {"type": "JSONDataset", "filepath": "data/link.json"},
        "dangling": {"type": "JSONDataset", "filepath": "data/dangling.json"},
        "dir": {"type": "JSONDataset", "filepath": "data/dir.json"},
        "to_dir": {"type": "JSONDataset", "filepath": "data/to_dir.json"},
        "fifo": {"type": "JSONDataset", "filepath": "data/fifo.json"},
    }))
    .build(&opts(p, "v"))
    .unwrap();
    c.save("link", Data::new(json!(1))).unwrap();
    assert!(
        std::fs::symlink_metadata(p.join("data/link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(p.join("real/target.json"))
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(json_of(&c, "link"), json!(1));
    c.save("dangling", Data::new(json!(2))).unwrap();
    assert!(
        std::fs::symlink_metadata(p.join("data/dangling.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(p.join("real/dangling.json"))
            .unwrap()
            .trim(),
        "2"
    );

    for (name, kind) in [
        ("dir", "a directory"),
        ("to_dir", "a directory"),
        ("fifo", "a FIFO"),
    ] {
        let err = c.save(name, Data::new(json!(3))).unwrap_err();
        assert!(matches!(err, CatalogError::NotAFile { .. }), "{name}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(kind) && msg.contains("refusing"), "{msg}");
    }
    assert!(p.join("data/dir.json").is_dir());
    assert!(
        std::fs::symlink_metadata(p.join("data/to_dir.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(p.join("real").is_dir());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn temp_files_of_a_killed_save_are_removed_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // What a killed save leaves: an unlocked temporary file.
    let orphan = data.join(".x.json.tmp-deadbeef");
    std::fs::write(&orphan, "{\"half").unwrap();
    // A live writer's temporary file is locked: it must survive.
    let live = data.join(".x.json.tmp-0123abcd");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    // An old not-yet-locked file is stale; a fresh one may be a starting writer.
    let old_new = data.join(".x.json.new-0000aaaa");
    let f = std::fs::File::create(&old_new).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let fresh_new = data.join(".x.json.new-1111bbbb");
    std::fs::write(&fresh_new, "").unwrap();
    // Another dataset's temp file is not touched.
    let unrelated = data.join(".y.json.tmp-deadbeef");
    std::fs::write(&unrelated, "").unwrap();

    let c = config(json!({"x": {"type": "JSONDataset", "filepath": "data/x.json"}}))
        .build(&opts(dir.path(), "v"))
        .unwrap();
    c.save("x", Data::new(json!(1))).unwrap();
    assert!(!orphan.exists());
    assert!(!old_new.exists());
    assert!(live.exists());
    assert!(fresh_new.exists());
    assert!(unrelated.exists());
    assert_eq!(json_of(&c, "x"), json!(1));
    drop(held);
}

#[test]
fn a_killed_versioned_save_is_cleaned_by_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let killed = dir.path().join("data/m.json/v1");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join(".m.json.tmp-deadbeef"), "{\"half").unwrap();
    let kept = dir.path().join("data/m.json/v0");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("m.json"), "0").unwrap();
    let c = config(json!({"m": {"type": "JSONDataset", "filepath": "data/m.json", "versioned": true}}))
        .build(&opts(dir.path(), "v2"))
        .unwrap();
    c.save("m", Data::new(json!(2))).unwrap();
    assert_eq!(
        std::fs::read_dir(&killed).unwrap().count(),
        0,
        "the temp file is removed"
    );
    // The empty folder of the killed save is not a version.
    let fresh = config(json!({"m": {"type": "JSONDataset", "filepath": "data/m.json", "versioned": true}}))
        .build(&opts(dir.path(), "v3"))
        .unwrap();
    assert_eq!(json_of(&fresh, "m"), json!(2));
    assert!(kept.join("m.json").is_file());
    assert!(dir.path().join("data/m.json/v2/m.json").is_file());
}

#[test]
fn save_errors_say_to_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "a file, not a folder").unwrap();
    let c = config(json!({
        "x": {"type": "JSONDataset", "filepath": "blocker/x.json"},
        "t": {"type": "TextDataset", "filepath": "t.txt"},
    }))
    .build(&opts(dir.path(), "v"))
    .unwrap();
    let err = c.save("x", Data::new(json!(1))).unwrap_err();
    assert!(matches!(err, CatalogError::SaveIo { .. }), "{err}");
    let expected = format!(
        "could not save `x` to {}: ",
        dir.path().join("blocker/x.json").display()
    );
    assert!(err.to_string().starts_with(&expected), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    let err = c.save("t", Data::new(vec![1u8])).unwrap_err();
    let expected = format!("could not save `t` to {}: ", dir.path().join("t.txt").display());
    assert!(err.to_string().starts_with(&expected), "{err}");
}

// ---- 5. transcoding ----

#[test]
fn transcodings_share_one_version_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({
        "m@json": {"type": "JSONDataset", "filepath": "data/m.json", "versioned": true},
        "m@text": {"type": "TextDataset", "filepath": "data/m.json", "versioned": true},
    }));
    let run1 = cfg.build(&opts(dir.path(), "v1")).unwrap();
    let run2 = cfg.build(&opts(dir.path(), "v2")).unwrap();
    run1.save("m@json", Data::new(json!(1))).unwrap();
    run2.save("m@json", Data::new(json!(2))).unwrap();
    // Each run reads its own version through the other transcoding.
    let text = |c: &Catalog| {
        c.load("m@text", None)
            .unwrap()
            .downcast_ref::<String>()
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(text(&run1), "1");
    assert_eq!(text(&run2), "2");
    assert_eq!(
        run1.saved_versions(),
        BTreeMap::from([("m".to_string(), "v1".to_string())])
    );
    // Pinned by the base name, for both sides.
    let run3 = cfg.build(&pinned(dir.path(), "v3", &[("m", "v1")])).unwrap();
    assert_eq!(text(&run3), "1");
    assert_eq!(json_of(&run3, "m@json"), json!(1));
    // Latest resolution is the logical dataset's newest.
    let run4 = cfg.build(&opts(dir.path(), "v4")).unwrap();
    assert_eq!(text(&run4), "2");
}

#[test]
fn transcodings_with_their_own_paths_show_the_format_and_never_read_stale_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({
        "t@csv": {"type": "CSVDataset", "filepath": "data/t.csv", "versioned": true},
        "t@parquet": {"type": "ParquetDataset", "filepath": "data/t.parquet", "versioned": true},
    }));
    let rows = json!([{"a": 1}]);
    cfg.build(&opts(dir.path(), "v0"))
        .unwrap()
        .save("t@parquet", Data::new(rows.clone()))
        .unwrap();
    cfg.build(&opts(dir.path(), "v1"))
        .unwrap()
        .save("t@csv", Data::new(rows))
        .unwrap();
    assert!(dir.path().join("data/t.parquet/v0/t.parquet").is_file());
    assert!(dir.path().join("data/t.csv/v1/t.csv").is_file());
    // The newest version of `t` is v1 (written as CSV): the Parquet side
    // must not silently read its older v0.
    let run2 = cfg.build(&opts(dir.path(), "v2")).unwrap();
    let err = run2.load("t@parquet", None).unwrap_err();
    let CatalogError::NoVersion {
        version, found_as, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(version.as_deref(), Some("v1"));
    assert_eq!(
        found_as.as_deref(),
        Some(dir.path().join("data/t.csv/v1/t.csv").as_path())
    );
    let u = run2.check_available(&["t@parquet", "t@csv"]);
    assert_eq!(u.len(), 1);
    assert!(u[0].reason.contains("exists as"), "{}", u[0].reason);
    // Pinning the base name to v0 reads the Parquet side's v0.
    let run3 = cfg.build(&pinned(dir.path(), "v3", &[("t", "v0")])).unwrap();
    assert!(run3.load("t@parquet", None).is_ok());
    // Conflicting pins for one logical dataset are refused.
    let err = cfg
        .build(&pinned(dir.path(), "v4", &[("t@csv", "v0"), ("t@parquet", "v1")]))
        .err()
        .unwrap();
    assert!(err.to_string().contains("conflicting versions"), "{err}");
}

#[test]
fn pattern_transcodings_are_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({
        "{name}@json": {"type": "JSONDataset", "filepath": "data/{name}.json", "versioned": true},
        "{name}@text": {"type": "TextDataset", "filepath": "data/{name}.json", "versioned": true},
    }));
    let run1 = cfg.build(&opts(dir.path(), "v1")).unwrap();
    cfg.build(&opts(dir.path(), "v2"))
        .unwrap()
        .save("a@json", Data::new(json!(2)))
        .unwrap();
    run1.save("a@json", Data::new(json!(1))).unwrap();
    let t = run1.load("a@text", None).unwrap();
    assert_eq!(t.downcast_ref::<String>().unwrap().trim(), "1");
    // The base name is known (through the patterns) and versioned.
    let run3 = cfg.build(&pinned(dir.path(), "v3", &[("a", "v1")])).unwrap();
    assert_eq!(
        run3.load("a@text", None)
            .unwrap()
            .downcast_ref::<String>()
            .unwrap()
            .trim(),
        "1"
    );
}

// ---- 6. located configuration errors ----

#[test]
fn catalog_problems_name_file_and_line() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(conf.path().join("base")).unwrap();
    std::fs::create_dir_all(conf.path().join("local")).unwrap();
    std::fs::write(
        conf.path().join("base/catalog.yml"),
        "ok:\n  type: JSONDataset\n  filepath: ok.json\n\nbad_type:\n  type: JSONDatset\n  filepath: x.json\n",
    )
    .unwrap();
    std::fs::write(
        conf.path().join("local/catalog_more.yml"),
        "# local overrides\nno_type:\n  filepath: y.json\nextra:\n  type: JSONDataset\n  filepath: z.json\n  colour: red\n",
    )
    .unwrap();
    let loader = weft_config::ConfigLoader::new(conf.path(), None, Value::Null);
    let catalog = loader.get("catalog").unwrap();
    let locator = weft_config::KeyLocator::new(&loader, "catalog").unwrap();
    let types = DatasetTypeRegistry::with_builtins();
    let err = CatalogConfig::parse_located(&catalog, &json!({}), &types, &|p| locator.locate(p))
        .err()
        .unwrap();
    let CatalogError::Config { problems } = &err else {
        panic!("{err}")
    };
    let at: BTreeMap<&str, (PathBuf, usize)> = problems
        .iter()
        .map(|p| {
            (
                p.dataset.as_deref().unwrap(),
                (p.file.clone().unwrap(), p.line.unwrap()),
            )
        })
        .collect();
    let base = conf.path().join("base/catalog.yml");
    let local = conf.path().join("local/catalog_more.yml");
    assert_eq!(at["bad_type"], (base.clone(), 6));
    assert_eq!(at["no_type"], (local.clone(), 2));
    assert_eq!(at["extra"], (local.clone(), 7));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{}:6: `bad_type`: unknown dataset type `JSONDatset`",
            base.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}:7: `extra`: unknown key `colour`", local.display())),
        "{msg}"
    );
    // The old entry point still works, without locations.
    let CatalogError::Config { problems } = CatalogConfig::parse(&catalog, &json!({}), &types).err().unwrap()
    else {
        panic!()
    };
    assert_eq!(problems.len(), 3);
    assert!(problems.iter().all(|p| p.file.is_none()));
}

#[test]
fn concurrent_saves_of_one_file_never_remove_each_others_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({"x": {"type": "JSONDataset", "filepath": "data/x.json"}}));
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let c = cfg.build(&opts(dir.path(), "v")).unwrap();
            s.spawn(move || {
                for i in 0..50i64 {
                    c.save("x", Data::new(json!([t, i]))).unwrap();
                }
            });
        }
    });
    let last: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/x.json")).unwrap()).unwrap();
    assert_eq!(last[1], json!(49));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "x.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
