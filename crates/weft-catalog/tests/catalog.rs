//! Datasets and the catalog on real files.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_catalog::{
    BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry, LoadType, Partitions,
};
use weft_pipeline::{Data, DataType, serde_data};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u32,
    name: String,
    score: f64,
    active: bool,
    note: Option<String>,
}
serde_data!(Row);

fn rows() -> Vec<Row> {
    vec![
        Row {
            id: 1,
            name: "a".into(),
            score: 1.5,
            active: true,
            note: None,
        },
        Row {
            id: 2,
            name: "b, c".into(),
            score: -2.0,
            active: false,
            note: Some("x".into()),
        },
    ]
}

fn build(dir: &std::path::Path, catalog: serde_json::Value, version: &str) -> Catalog {
    let cfg = CatalogConfig::parse(&catalog, &json!({}), &DatasetTypeRegistry::with_builtins()).unwrap();
    cfg.build(&BuildOptions {
        project_dir: dir.to_path_buf(),
        save_version: version.into(),
        load_versions: BTreeMap::new(),
        parameters: json!({"model": {"lr": 0.1}}),
        run_scope: None,
    })
    .unwrap()
}

#[test]
fn every_file_format_round_trips_typed_and_untyped() {
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({
            "j": {"type": "json.JSONDataset", "filepath": "data/r.json"},
            "y": {"type": "yaml.YAMLDataset", "filepath": "data/r.yml"},
            "c": {"type": "csv.CSVDataset", "filepath": "data/r.csv"},
            "p": {"type": "parquet.ParquetDataset", "filepath": "data/r.parquet"},
            "a": {"type": "arrow.ArrowIPCDataset", "filepath": "data/r.arrow"},
        }),
        "v1",
    );
    let ty = DataType::of::<Vec<Row>>();
    for name in ["j", "y", "c", "p", "a"] {
        c.save(name, Data::new(rows())).unwrap();
        let typed = c.load(name, Some(&ty)).unwrap();
        assert_eq!(typed.downcast_ref::<Vec<Row>>().unwrap(), &rows(), "{name}");
    }
    // Untyped loads: JSON values for serde formats, a RecordBatch for tables.
    let v = c.load("c", None).unwrap();
    assert_eq!(
        v.downcast_ref::<serde_json::Value>().unwrap()[1]["score"],
        json!(-2.0)
    );
    assert_eq!(
        v.downcast_ref::<serde_json::Value>().unwrap()[0]["note"],
        json!(null)
    );
    let t = c.load("p", None).unwrap();
    assert_eq!(t.downcast_ref::<RecordBatch>().unwrap().num_rows(), 2);
    assert_eq!(c.load_type("c"), LoadType::Decodes);
    assert_eq!(c.load_type("p"), LoadType::Table);
    // A RecordBatch saves as is.
    c.save("a", t.clone()).unwrap();
    let back = c.load("a", Some(&DataType::of::<RecordBatch>())).unwrap();
    assert_eq!(
        back.downcast_ref::<RecordBatch>().unwrap(),
        t.downcast_ref::<RecordBatch>().unwrap()
    );
    // No temporary files are left behind by the atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn csv_errors_name_row_column_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/bad.csv"),
        "id,name,score,active,note\n1,a,1.0,true,\n2,b,oops,false,\n",
    )
    .unwrap();
    let c = build(
        dir.path(),
        json!({"c": {"type": "pandas.CSVDataset", "filepath": "data/bad.csv"}}),
        "v",
    );
    let err = c
        .load("c", Some(&DataType::of::<Vec<Row>>()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`c`") && err.contains("bad.csv"), "{err}");
    assert!(
        err.contains("row 2") && err.contains("column `score`") && err.contains("oops"),
        "{err}"
    );
}

#[test]
fn text_bytes_and_memory_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({
            "t": {"type": "text.TextDataset", "filepath": "t.txt"},
            "b": {"type": "bytes.BytesDataset", "filepath": "b.bin"},
        }),
        "v",
    );
    c.save("t", Data::new("hello".to_string())).unwrap();
    assert_eq!(
        c.load("t", None).unwrap().downcast_ref::<String>().unwrap(),
        "hello"
    );
    c.save("b", Data::new(vec![0u8, 159, 255])).unwrap();
    assert_eq!(
        c.load("b", None).unwrap().downcast_ref::<Vec<u8>>().unwrap(),
        &vec![0u8, 159, 255]
    );
    // Undeclared names are memory datasets; readers share one Arc.
    let d = Data::new(vec![1i64, 2]);
    c.save("mem", d.clone()).unwrap();
    assert!(c.is_memory("mem"));
    assert!(c.load("mem", None).unwrap().ptr_eq(&d));
    c.release("mem");
    assert!(!c.exists("mem").unwrap());
    let err = c.load("mem", None).unwrap_err();
    assert!(matches!(err, CatalogError::NotSaved { .. }), "{err}");
}

#[test]
fn versions_are_per_run_pinnable_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let entry = json!({"m": {"type": "json.JSONDataset", "filepath": "data/m.json", "versioned": true}});
    let run1 = build(dir.path(), entry.clone(), "2026-01-01T00.00.00.000001Z-aaaaaaaa");
    assert!(!run1.exists("m").unwrap());
    let err = run1.load("m", None).unwrap_err().to_string();
    assert!(err.contains("no version found"), "{err}");
    run1.save("m", Data::new(json!(1))).unwrap();
    assert_eq!(run1.saved_versions()["m"], "2026-01-01T00.00.00.000001Z-aaaaaaaa");
    let err = run1.save("m", Data::new(json!(2))).unwrap_err();
    assert!(matches!(err, CatalogError::VersionExists { .. }), "{err}");

    let run2 = build(dir.path(), entry.clone(), "2026-01-01T00.00.00.000002Z-bbbbbbbb");
    run2.save("m", Data::new(json!(2))).unwrap();
    // Each run reads its own version, even though run2's is newer.
    assert_eq!(run1.load("m", None).unwrap().to_json().unwrap(), json!(1));
    assert_eq!(run2.load("m", None).unwrap().to_json().unwrap(), json!(2));
    // A fresh run reads the newest; a pinned one reads its pin.
    let run3 = build(dir.path(), entry.clone(), "z");
    assert_eq!(run3.load("m", None).unwrap().to_json().unwrap(), json!(2));
    let cfg = CatalogConfig::parse(&entry, &json!({}), &DatasetTypeRegistry::with_builtins()).unwrap();
    let pinned = cfg
        .build(&BuildOptions {
            project_dir: dir.path().to_path_buf(),
            save_version: "z2".into(),
            load_versions: BTreeMap::from([("m".into(), "2026-01-01T00.00.00.000001Z-aaaaaaaa".into())]),
            parameters: serde_json::Value::Null,
            run_scope: None,
        })
        .unwrap();
    assert_eq!(pinned.load("m", None).unwrap().to_json().unwrap(), json!(1));
    let missing = cfg
        .build(&BuildOptions {
            project_dir: dir.path().to_path_buf(),
            save_version: "z3".into(),
            load_versions: BTreeMap::from([("m".into(), "nope".into())]),
            parameters: serde_json::Value::Null,
            run_scope: None,
        })
        .unwrap();
    assert!(
        missing
            .load("m", None)
            .unwrap_err()
            .to_string()
            .contains("version nope not found")
    );
}

#[test]
fn parameters_are_datasets_and_decode_into_structs() {
    #[derive(Deserialize, Serialize, Debug, PartialEq)]
    struct Model {
        lr: f64,
    }
    serde_data!(Model);
    let dir = tempfile::tempdir().unwrap();
    let c = build(dir.path(), json!({}), "v");
    let m = c.load("params:model", Some(&DataType::of::<Model>())).unwrap();
    assert_eq!(m.downcast_ref::<Model>().unwrap(), &Model { lr: 0.1 });
    assert_eq!(
        c.load("params:model.lr", None).unwrap().to_json().unwrap(),
        json!(0.1)
    );
    assert_eq!(
        c.load("parameters", None).unwrap().to_json().unwrap(),
        json!({"model": {"lr": 0.1}})
    );
    let err = c
        .load("params:model", Some(&DataType::of::<Vec<Row>>()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`params:model`") && err.contains("Row"), "{err}");
}

#[test]
fn factory_patterns_follow_kedro_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({
            "explicit_csv": {"type": "json.JSONDataset", "filepath": "explicit.json"},
            "{name}_csv": {"type": "csv.CSVDataset", "filepath": "data/{name}.csv"},
            "{a}_{b}": {"type": "text.TextDataset", "filepath": "data/{a}/{b}.txt"},
            "{default}": {"type": "json.JSONDataset", "filepath": "data/any/{default}.json"},
        }),
        "v",
    );
    let cases = [
        ("explicit_csv", "json.JSONDataset", "explicit.json", None),
        ("cars_csv", "csv.CSVDataset", "data/cars.csv", Some("{name}_csv")),
        ("x_y", "text.TextDataset", "data/x/y.txt", Some("{a}_{b}")),
        (
            "plain",
            "json.JSONDataset",
            "data/any/plain.json",
            Some("{default}"),
        ),
    ];
    for (name, ty, path, pattern) in cases {
        let info = c.describe(name).unwrap_or_else(|| panic!("{name} not resolved"));
        assert_eq!(info.type_name, ty, "{name}");
        assert_eq!(info.filepath.as_deref(), Some(path), "{name}");
        assert_eq!(info.pattern.as_deref(), pattern, "{name}");
        assert!(c.contains(name));
    }
    c.save("cars_csv", Data::new(rows())).unwrap();
    assert!(dir.path().join("data/cars.csv").is_file());
}

#[test]
fn config_errors_are_all_reported_at_once() {
    let err = CatalogConfig::parse(
        &json!({
            "a": {"type": "json.JSONDatset", "filepath": "a.json"},
            "b": {"type": "csv.CSVDataset"},
            "c": {"type": "json.JSONDataset", "filepath": "c.json", "bogus": 1},
            "d": {"type": "json.JSONDataset", "filepath": "d.json", "credentials": "nope"},
            "e": "not a map",
            "_anchor": {"anything": true},
        }),
        &json!({}),
        &DatasetTypeRegistry::with_builtins(),
    )
    .err()
    .unwrap();
    let CatalogError::Config { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let all = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("`a`: unknown dataset type `json.JSONDatset` (did you mean `json.JSONDataset`"),
        "{all}"
    );
    assert!(all.contains("`b`: `filepath` is required"), "{all}");
    assert!(all.contains("`c`: unknown key `bogus`"), "{all}");
    assert!(all.contains("`d`: credentials `nope`"), "{all}");
    assert!(all.contains("`e`: an entry must be a map"), "{all}");
}

#[test]
fn duplicate_dataset_types_are_rejected() {
    let mut types = DatasetTypeRegistry::with_builtins();
    let factory: weft_catalog::DatasetFactory = Arc::new(|spec| {
        Ok(Arc::new(weft_catalog::MemoryDataset::new(spec.name)) as Arc<dyn weft_catalog::Dataset>)
    });
    let err = types.register("json.JSONDataset", factory.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`json.JSONDataset` is already registered"),
        "{err}"
    );
    types.register("my.CustomDataset", factory).unwrap();
    assert_eq!(types.canonical("CustomDataset"), Some("my.CustomDataset"));
    assert_eq!(
        types.canonical("kedro_datasets.json.JSONDataset"),
        Some("json.JSONDataset")
    );
}

#[test]
fn partitioned_folder_saves_and_loads_lazily() {
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({"parts": {"type": "partitions.PartitionedDataset", "path": "data/parts", "dataset": "json.JSONDataset", "filename_suffix": ".json"}}),
        "v",
    );
    c.save(
        "parts",
        Data::new(json!({"2026-01": {"n": 1}, "2026-02": {"n": 2}})),
    )
    .unwrap();
    let p = c.load("parts", None).unwrap();
    let parts = p.downcast_ref::<Partitions>().unwrap();
    assert_eq!(parts.ids().collect::<Vec<_>>(), ["2026-01", "2026-02"]);
    assert_eq!(
        parts.load("2026-02", None).unwrap().to_json().unwrap(),
        json!({"n": 2})
    );
    assert!(dir.path().join("data/parts/2026-01.json").is_file());
}

#[test]
fn two_catalogs_from_one_config_never_share_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CatalogConfig::parse(&json!({}), &json!({}), &DatasetTypeRegistry::with_builtins()).unwrap();
    let opts = BuildOptions {
        project_dir: dir.path().to_path_buf(),
        save_version: "v".into(),
        ..Default::default()
    };
    let (a, b) = (cfg.build(&opts).unwrap(), cfg.build(&opts).unwrap());
    a.save("x", Data::new(1i64)).unwrap();
    assert!(!b.exists("x").unwrap());
    assert!(b.load("x", None).is_err());
}

#[test]
fn csv_decodes_typed_fields_and_honours_load_and_save_args() {
    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Typed {
        i: i32,
        u: u8,
        f: f32,
        b: bool,
        o: Option<i64>,
        s: String,
    }
    serde_data!(Typed);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("semi.csv"),
        "i;u;f;b;o;s\n-3;255;2.5;true;;hello world\n7;0;-1e3;FALSE;42; 12 \n",
    )
    .unwrap();
    std::fs::write(dir.path().join("nohead.csv"), "1,a\n2,b\n").unwrap();
    let c = build(
        dir.path(),
        json!({
            "semi": {"type": "csv.CSVDataset", "filepath": "semi.csv", "load_args": {"delimiter": ";"}},
            "nohead": {"type": "CSVDataset", "filepath": "nohead.csv", "load_args": {"has_header": false}},
            "out": {"type": "pandas.CSVDataset", "filepath": "out/out.tsv",
                    "save_args": {"delimiter": "\t", "has_header": false}},
        }),
        "v",
    );
    let typed = c.load("semi", Some(&DataType::of::<Vec<Typed>>())).unwrap();
    assert_eq!(
        typed.downcast_ref::<Vec<Typed>>().unwrap(),
        &vec![
            Typed {
                i: -3,
                u: 255,
                f: 2.5,
                b: true,
                o: None,
                s: "hello world".into()
            },
            Typed {
                i: 7,
                u: 0,
                f: -1000.0,
                b: false,
                o: Some(42),
                s: " 12 ".into()
            },
        ]
    );
    // Untyped: scalars are inferred, empty fields are null.
    let untyped = c.load("semi", None).unwrap().to_json().unwrap();
    assert_eq!(
        untyped,
        json!([
            {"i": -3, "u": 255, "f": 2.5, "b": true, "o": null, "s": "hello world"},
            {"i": 7, "u": 0, "f": -1000.0, "b": false, "o": 42, "s": 12},
        ])
    );
    // Without a header, rows decode as tuples.
    let rows = c
        .load("nohead", Some(&DataType::of::<Vec<(i64, String)>>()))
        .unwrap();
    assert_eq!(
        rows.downcast_ref::<Vec<(i64, String)>>().unwrap(),
        &vec![(1, "a".to_string()), (2, "b".to_string())]
    );
    c.save("out", Data::new(json!([{"a": 1, "b": "x"}, {"a": 2, "b": null}])))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/out.tsv")).unwrap(),
        "1\tx\n2\t\n"
    );
    // A value out of range for the field type is a data error naming row and column.
    std::fs::write(dir.path().join("semi.csv"), "i;u;f;b;o;s\n1;256;1;true;;x\n").unwrap();
    let err = c.load("semi", Some(&DataType::of::<Vec<Typed>>())).unwrap_err();
    assert_eq!(err.fault(), weft_catalog::Fault::Data);
    let msg = err.to_string();
    assert!(msg.contains("row 1") && msg.contains("column `u`"), "{msg}");
}

#[test]
fn yaml_and_json_decode_straight_into_structs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yml"),
        "- {id: 1, name: a, score: 1.5, active: true, note: null}\n- id: 2\n  name: 'b, c'\n  score: -2\n  active: false\n  note: x\n",
    )
    .unwrap();
    let c = build(
        dir.path(),
        json!({"y": {"type": "YAMLDataset", "filepath": "r.yml"}}),
        "v",
    );
    let typed = c.load("y", Some(&DataType::of::<Vec<Row>>())).unwrap();
    assert_eq!(typed.downcast_ref::<Vec<Row>>().unwrap(), &rows());
    assert_eq!(c.load_type("y"), LoadType::Decodes);
    // A type mismatch is a data error naming the dataset and the file.
    let err = c.load("y", Some(&DataType::of::<Vec<String>>())).unwrap_err();
    assert_eq!(err.fault(), weft_catalog::Fault::Data);
    assert_eq!(err.dataset(), Some("y"));
    assert!(err.to_string().contains("r.yml"), "{err}");
}

#[test]
fn credentials_resolve_from_the_credentials_section() {
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let mut types = DatasetTypeRegistry::with_builtins();
    let record = Arc::clone(&seen);
    types
        .register(
            "db.TableDataset",
            Arc::new(move |spec: &weft_catalog::DatasetSpec<'_>| {
                record
                    .lock()
                    .unwrap()
                    .push(spec.credentials.cloned().unwrap_or_default());
                Ok(Arc::new(weft_catalog::MemoryDataset::new(spec.name)) as Arc<dyn weft_catalog::Dataset>)
            }),
        )
        .unwrap();
    let creds = json!({"warehouse": {"user": "u", "password": "p"}});
    let cfg = CatalogConfig::parse(
        &json!({
            "t": {"type": "db.TableDataset", "credentials": "warehouse"},
            "inline": {"type": "TableDataset", "credentials": {"token": "k"}},
        }),
        &creds,
        &types,
    )
    .unwrap();
    seen.lock().unwrap().clear();
    let c = cfg.build(&BuildOptions::default()).unwrap();
    assert!(c.contains("t") && c.contains("inline"));
    let mut got = seen.lock().unwrap().clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(
        got,
        vec![json!({"token": "k"}), json!({"user": "u", "password": "p"})]
    );
    // A missing reference is a configuration error at parse time.
    let err = CatalogConfig::parse(
        &json!({"t": {"type": "db.TableDataset", "credentials": "nope"}}),
        &creds,
        &types,
    )
    .err()
    .unwrap();
    assert_eq!(err.fault(), weft_catalog::Fault::Config);
    assert!(err.to_string().contains("`t`: credentials `nope`"), "{err}");
}

#[test]
fn memory_release_drops_the_only_reference() {
    let mut c = Catalog::new();
    let d = Data::new(vec![1u64; 1000]);
    c.add_data("m", d.clone());
    let a = c.load("m", None).unwrap();
    let b = c.load("m", None).unwrap();
    assert!(a.ptr_eq(&d) && b.ptr_eq(&d));
    drop((a, b));
    assert_eq!(d.strong_count(), 2);
    c.release("m");
    assert_eq!(d.strong_count(), 1);
    let err = c.load("m", None).unwrap_err();
    assert_eq!(err.dataset(), Some("m"));
    assert!(err.to_string().contains("`m`"), "{err}");
    // Added and undeclared names are memory datasets.
    assert!(c.is_memory("m") && c.is_memory("undeclared"));
}

#[test]
fn failed_saves_leave_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({"c": {"type": "csv.CSVDataset", "filepath": "d/c.csv"},
               "p": {"type": "parquet.ParquetDataset", "filepath": "d/p.parquet", "versioned": true}}),
        "v1",
    );
    c.save("c", Data::new(json!([{"a": 1}]))).unwrap();
    // Row 2 is not a row: the save fails and the previous file is intact.
    let err = c.save("c", Data::new(json!([{"a": 2}, 3]))).unwrap_err();
    assert!(err.to_string().contains("row 2"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("d/c.csv")).unwrap(),
        "a\n1\n"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["c.csv"]);
    // Typed rows save as a table and load back as a RecordBatch or as rows.
    c.save("p", Data::new(rows())).unwrap();
    assert!(dir.path().join("d/p.parquet/v1/p.parquet").is_file());
    let batch = c.load("p", None).unwrap();
    let batch = batch.downcast_ref::<RecordBatch>().unwrap();
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(
        c.saved_versions(),
        BTreeMap::from([("p".to_string(), "v1".to_string())])
    );
}

#[test]
fn transcoded_names_are_separate_entries_and_catalog_is_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Catalog>();
    send_sync::<CatalogConfig>();
    let dir = tempfile::tempdir().unwrap();
    let c = build(
        dir.path(),
        json!({
            "cars@json": {"type": "json.JSONDataset", "filepath": "cars.json"},
            "cars@text": {"type": "text.TextDataset", "filepath": "cars.json"},
        }),
        "v",
    );
    c.save("cars@json", Data::new(json!({"n": 1}))).unwrap();
    assert!(!c.contains("cars"));
    let text = c.load("cars@text", None).unwrap();
    assert_eq!(text.downcast_ref::<String>().unwrap().trim(), r#"{"n":1}"#);
}

#[test]
fn partitions_with_sub_config_copy_between_folders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in/2026")).unwrap();
    std::fs::write(dir.path().join("in/2026/a.csv"), "x;y\n1;2\n").unwrap();
    std::fs::write(dir.path().join("in/b.csv"), "x;y\n3;4\n").unwrap();
    std::fs::write(dir.path().join("in/ignored.txt"), "not a partition").unwrap();
    let c = build(
        dir.path(),
        json!({
            "src": {"type": "partitions.PartitionedDataset", "path": "in", "filename_suffix": ".csv",
                    "dataset": {"type": "pandas.CSVDataset", "load_args": {"delimiter": ";"},
                                "save_args": {"delimiter": ";"}}},
            "dst": {"type": "PartitionedDataset", "path": "out", "filename_suffix": ".json",
                    "dataset": "JSONDataset"},
        }),
        "v",
    );
    let src = c.load("src", None).unwrap();
    let parts = src.downcast_ref::<Partitions>().unwrap();
    assert_eq!(parts.ids().collect::<Vec<_>>(), ["2026/a", "b"]);
    let typed = parts
        .load("2026/a", Some(&DataType::of::<Vec<BTreeMap<String, i64>>>()))
        .unwrap();
    assert_eq!(
        typed.downcast_ref::<Vec<BTreeMap<String, i64>>>().unwrap()[0]["y"],
        2
    );
    // Saving a `Partitions` value copies each partition through the target format.
    c.save("dst", src.clone()).unwrap();
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/b.json")).unwrap()).unwrap();
    assert_eq!(out, json!([{"x": 3, "y": 4}]));
    assert!(dir.path().join("out/2026/a.json").is_file());
    assert!(c.exists("dst").unwrap());
    assert!(
        parts
            .load("missing", None)
            .unwrap_err()
            .to_string()
            .contains("no partition `missing`")
    );
}
