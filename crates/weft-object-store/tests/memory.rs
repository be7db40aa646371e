//! Datasets on `memory://` (the object_store crate's in-memory store, no
//! server): every format, versioning, pins, run scope, partitions, errors.

use std::path::PathBuf;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use serde_json::{Value, json};
use weft_catalog::{
    BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry, Fault, RunScope, StorageError,
};
use weft_object_store::{ObjectStoreOptions, dataset_types, register};
use weft_pipeline::{Data, DataType};

fn config(types: &DatasetTypeRegistry, catalog: Value) -> CatalogConfig {
    CatalogConfig::parse(&catalog, &json!({}), types).unwrap()
}

fn run(config: &CatalogConfig, version: &str, pins: &[(&str, &str)]) -> Catalog {
    config
        .build(&BuildOptions {
            project_dir: PathBuf::from("/project"),
            save_version: version.into(),
            load_versions: pins.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        })
        .unwrap()
}

fn rows() -> Value {
    json!([{"name": "a", "n": 1}, {"name": "b", "n": 2}])
}

#[test]
fn every_format_saves_and_loads_in_another_run() {
    let types = dataset_types();
    let entries = [
        ("csv", "csv.CSVDataset", rows()),
        ("json", "json.JSONDataset", rows()),
        ("yaml", "yaml.YAMLDataset", rows()),
        ("parquet", "parquet.ParquetDataset", rows()),
        ("arrow", "arrow.ArrowIPCDataset", rows()),
    ];
    let mut catalog = serde_json::Map::new();
    for (name, ty, _) in &entries {
        catalog.insert(
            name.to_string(),
            json!({"type": ty, "filepath": format!("memory://formats/data/{name}.{name}")}),
        );
    }
    catalog.insert(
        "text".into(),
        json!({"type": "text.TextDataset", "filepath": "memory://formats/t.txt"}),
    );
    catalog.insert(
        "bytes".into(),
        json!({"type": "bytes.BytesDataset", "filepath": "memory://formats/b.bin"}),
    );
    let config = config(&types, Value::Object(catalog));
    let first = run(&config, "r1", &[]);
    for (name, _, value) in &entries {
        first.save(name, Data::new(value.clone())).unwrap();
    }
    first.save("text", Data::new("hello".to_string())).unwrap();
    first.save("bytes", Data::new(vec![0u8, 1, 255])).unwrap();

    let second = run(&config, "r2", &[]);
    let ty = DataType::of::<Value>();
    for (name, _, _) in &entries {
        assert!(second.exists(name).unwrap(), "{name}");
        let back = second.load(name, Some(&ty)).unwrap();
        let back = back.downcast_ref::<Value>().unwrap();
        assert_eq!(back, &rows(), "{name}");
    }
    let table = second.load("parquet", None).unwrap();
    let table = table.downcast_ref::<RecordBatch>().unwrap();
    assert_eq!(table.num_rows(), 2);
    assert_eq!(
        table
            .column_by_name("n")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values(),
        &[1, 2]
    );
    assert_eq!(
        table
            .column_by_name("name")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(1),
        "b"
    );
    assert_eq!(
        second
            .load("text", None)
            .unwrap()
            .downcast_ref::<String>()
            .unwrap(),
        "hello"
    );
    assert_eq!(
        second
            .load("bytes", None)
            .unwrap()
            .downcast_ref::<Vec<u8>>()
            .unwrap(),
        &vec![0u8, 1, 255]
    );
    let info = second.describe("csv").unwrap();
    assert_eq!(info.filepath.as_deref(), Some("memory://formats/data/csv.csv"));
}

#[test]
fn versioned_saves_resolve_the_newest_and_pins_read_older_ones() {
    let types = dataset_types();
    for (ty, ext) in [
        ("csv.CSVDataset", "csv"),
        ("json.JSONDataset", "json"),
        ("parquet.ParquetDataset", "parquet"),
    ] {
        let url = format!("memory://versions/{ext}/cars.{ext}");
        let config = config(
            &types,
            json!({"cars": {"type": ty, "filepath": url, "versioned": true}}),
        );
        let versions = [
            "2026-12-01T10.00.00.000Z-aaaaaaaa",
            "2026-12-01T11.00.00.000Z-bbbbbbbb",
        ];
        for (i, v) in versions.iter().enumerate() {
            let c = run(&config, v, &[]);
            c.save("cars", Data::new(json!([{"n": i as i64 + 1}]))).unwrap();
            assert_eq!(c.saved_versions()["cars"], *v);
            // This run reads what it saved.
            let back = c.load("cars", Some(&DataType::of::<Value>())).unwrap();
            assert_eq!(back.to_json().unwrap()[0]["n"], json!(i + 1));
        }
        // A version is never overwritten.
        let again = run(&config, versions[1], &[])
            .save("cars", Data::new(json!([{"n": 9}])))
            .unwrap_err();
        assert!(matches!(again, CatalogError::VersionExists { .. }), "{again}");

        let newest = run(&config, "2026-12-02T00.00.00.000Z-cccccccc", &[]);
        let back = newest
            .load("cars", Some(&DataType::of::<Value>()))
            .unwrap()
            .to_json()
            .unwrap();
        assert_eq!(back[0]["n"], json!(2), "{ty}");
        assert_eq!(newest.loaded_versions()["cars"], versions[1]);

        let pinned = run(
            &config,
            "2026-12-02T00.00.00.000Z-dddddddd",
            &[("cars", versions[0])],
        );
        let back = pinned
            .load("cars", Some(&DataType::of::<Value>()))
            .unwrap()
            .to_json()
            .unwrap();
        assert_eq!(back[0]["n"], json!(1), "{ty}");
        assert_eq!(pinned.loaded_versions()["cars"], versions[0]);

        let missing = run(&config, "x", &[("cars", "2000-01-01T00.00.00.000Z-00000000")]);
        let unavailable = missing.check_available(&["cars"]);
        assert_eq!(unavailable.len(), 1);
        assert!(
            unavailable[0].reason.contains("pinned version"),
            "{}",
            unavailable[0]
        );
        assert!(matches!(
            missing.load("cars", None),
            Err(CatalogError::NoVersion { .. })
        ));
    }
}

#[test]
fn no_version_yet_is_reported_with_the_url() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({"m": {"type": "json.JSONDataset", "filepath": "memory://empty/m.json", "versioned": true}}),
    );
    let err = run(&config, "r", &[]).load("m", None).unwrap_err();
    assert!(
        matches!(err, CatalogError::NoVersion { version: None, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("memory://empty/m.json"), "{err}");
}

#[test]
fn transcoded_sides_share_versions_on_the_object_store() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({
            "cars@json": {"type": "json.JSONDataset", "filepath": "memory://tc/cars.json", "versioned": true},
            "cars@parquet": {"type": "parquet.ParquetDataset", "filepath": "memory://tc/cars.parquet", "versioned": true},
        }),
    );
    let writer = run(&config, "v1", &[]);
    writer.save("cars@json", Data::new(rows())).unwrap();
    // The parquet side lacks v1: the error says where it exists.
    let err = run(&config, "v2", &[("cars", "v1")])
        .load("cars@parquet", None)
        .unwrap_err();
    let CatalogError::NoVersion { found_as, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        found_as.as_deref(),
        Some(std::path::Path::new("memory://tc/cars.json/v1/cars.json"))
    );
}

#[test]
fn overlapping_runs_write_run_scoped_outputs_apart() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({
            "out": {"type": "json.JSONDataset", "filepath": "memory://scope/data/out.json"},
            "shared_in": {"type": "json.JSONDataset", "filepath": "memory://scope/data/in.json"},
        }),
    );
    run(&config, "seed", &[])
        .save("shared_in", Data::new(json!(7)))
        .unwrap();
    assert!(config.is_shared_file("out"));
    let scoped = |run_id: &str| {
        config
            .build(&BuildOptions {
                project_dir: PathBuf::from("/project"),
                save_version: run_id.into(),
                run_scope: Some(RunScope {
                    dir: PathBuf::from("/project/.weft/runs").join(run_id),
                    datasets: ["out".to_string()].into(),
                }),
                ..Default::default()
            })
            .unwrap()
    };
    let (a, b) = (scoped("run-a"), scoped("run-b"));
    a.save("out", Data::new(json!("a"))).unwrap();
    b.save("out", Data::new(json!("b"))).unwrap();
    assert_eq!(a.load("out", None).unwrap().to_json().unwrap(), json!("a"));
    assert_eq!(b.load("out", None).unwrap().to_json().unwrap(), json!("b"));
    assert_eq!(
        a.scoped_paths()["out"],
        PathBuf::from("memory://scope/.weft/runs/run-a/data/out.json")
    );
    assert_eq!(
        b.describe("out").unwrap().filepath.as_deref(),
        Some("memory://scope/.weft/runs/run-b/data/out.json")
    );
    // Inputs no run writes stay shared; the unscoped output was never written.
    assert_eq!(a.load("shared_in", None).unwrap().to_json().unwrap(), json!(7));
    assert!(!run(&config, "later", &[]).exists("out").unwrap());
}

#[test]
fn partitioned_datasets_list_a_prefix() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({"parts": {"type": "partitions.PartitionedDataset", "path": "memory://parts/p", "dataset": "json.JSONDataset", "filename_suffix": ".json"}}),
    );
    let c = run(&config, "r", &[]);
    assert!(!c.exists("parts").unwrap());
    assert!(
        c.check_available(&["parts"])[0].reason.contains("no object"),
        "{:?}",
        c.check_available(&["parts"])
    );
    c.save("parts", Data::new(json!({"a": 1, "sub/b": 2}))).unwrap();
    let back = run(&config, "r2", &[]).load("parts", None).unwrap();
    let parts = back.downcast_ref::<weft_catalog::Partitions>().unwrap();
    assert_eq!(parts.ids().collect::<Vec<_>>(), ["a", "sub/b"]);
    assert_eq!(parts.load("sub/b", None).unwrap().to_json().unwrap(), json!(2));
}

#[test]
fn a_missing_object_is_a_data_error_naming_the_dataset_and_the_url() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({"gone": {"type": "json.JSONDataset", "filepath": "memory://miss/gone.json"}}),
    );
    let c = run(&config, "r", &[]);
    assert!(!c.exists("gone").unwrap());
    let err = c.load("gone", None).unwrap_err();
    let CatalogError::Storage {
        dataset,
        url,
        action,
        source,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (dataset.as_str(), url.as_str(), *action),
        ("gone", "memory://miss/gone.json", "read")
    );
    assert!(matches!(source, StorageError::NotFound { .. }), "{source:?}");
    assert_eq!(err.fault(), Fault::Data);
    // The object_store error is kept as the typed source.
    let inner = std::error::Error::source(source).unwrap();
    assert!(inner.downcast_ref::<object_store::Error>().is_some(), "{inner}");
    let unavailable = c.check_available(&["gone"]);
    assert_eq!(unavailable[0].reason, "the file does not exist");
}

#[test]
fn bad_urls_and_credentials_are_configuration_problems() {
    let types = dataset_types();
    let cases = [
        (
            json!({"type": "json.JSONDataset", "filepath": "memory:///x.json"}),
            "no bucket",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "memory://b"}),
            "no object key",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "s3://b/a/../x.json", "credentials": "s3"}),
            "malformed URL",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "s3://b/x.json"}),
            "no credentials",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "gs://b/x.json"}),
            "no credentials",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "az://c/x.json"}),
            "no credentials",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "s3://b/x.json", "credentials": "half"}),
            "`key` and `secret`",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "s3://b/x.json", "credentials": "typo"}),
            "unknown key `secret_key`",
        ),
        (
            json!({"type": "json.JSONDataset", "filepath": "hdfs://b/x.json"}),
            "no storage backend for the scheme `hdfs://`",
        ),
    ];
    let credentials = json!({
        "s3": {"key": "k", "secret": "s"},
        "half": {"key": "k"},
        "typo": {"key": "k", "secret_key": "s"},
    });
    for (entry, expected) in cases {
        let url = entry["filepath"].as_str().unwrap().to_string();
        let err = CatalogConfig::parse(&json!({"ds": entry}), &credentials, &types)
            .err()
            .unwrap();
        assert_eq!(err.fault(), Fault::Config);
        let text = err.to_string();
        assert!(
            text.contains("`ds`") && text.contains(&url) && text.contains(expected),
            "{url}: {text}"
        );
    }
}

#[test]
fn registering_the_schemes_twice_is_refused() {
    let mut types = dataset_types();
    let err = register(&mut types, ObjectStoreOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("storage scheme `s3` is already registered"),
        "{err}"
    );
    let mut fresh = DatasetTypeRegistry::with_builtins();
    register(&mut fresh, ObjectStoreOptions::default()).unwrap();
    assert_eq!(
        fresh.storage().schemes().collect::<Vec<_>>(),
        ["az", "gs", "memory", "s3"]
    );
}

#[test]
fn memory_stores_are_per_registry() {
    let entry = json!({"x": {"type": "json.JSONDataset", "filepath": "memory://own/x.json"}});
    let (a, b) = (dataset_types(), dataset_types());
    run(&config(&a, entry.clone()), "r", &[])
        .save("x", Data::new(json!(1)))
        .unwrap();
    assert!(run(&config(&a, entry.clone()), "r", &[]).exists("x").unwrap());
    assert!(!run(&config(&b, entry), "r", &[]).exists("x").unwrap());
}

/// The sync API called from inside a tokio runtime (a current-thread one,
/// the strictest) neither panics ("cannot start a runtime from within a
/// runtime") nor deadlocks, and dropping the last store there is safe.
#[tokio::test]
async fn sync_calls_from_inside_an_async_runtime_complete() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({"x": {"type": "json.JSONDataset", "filepath": "memory://async/x.json"}}),
    );
    let c = run(&config, "r", &[]);
    c.save("x", Data::new(json!({"ok": true}))).unwrap();
    assert_eq!(c.load("x", None).unwrap().to_json().unwrap(), json!({"ok": true}));
    let from_blocking = tokio::task::spawn_blocking(move || c.load("x", None).map(|d| d.to_json().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_blocking, json!({"ok": true}));
    drop(config);
    drop(types);
}

/// A save that fails halfway through encoding sends nothing: the previous
/// object stays whole, and a versioned save leaves no version behind.
#[test]
fn a_save_failing_mid_encoding_leaves_the_previous_object() {
    let types = dataset_types();
    let config = config(
        &types,
        json!({
            "rows": {"type": "csv.CSVDataset", "filepath": "memory://atomic/rows.csv"},
            "vrows": {"type": "csv.CSVDataset", "filepath": "memory://atomic/vrows.csv", "versioned": true},
        }),
    );
    let c = run(&config, "v1", &[]);
    c.save("rows", Data::new(json!([{"a": 1}]))).unwrap();
    // The second row is neither an object nor a list: the encoder fails
    // after writing the header and the first row.
    let bad = Data::new(json!([{"a": 2}, 5]));
    let err = c.save("rows", bad.clone()).unwrap_err();
    assert!(matches!(err, CatalogError::Save { .. }), "{err}");
    assert!(err.to_string().contains("memory://atomic/rows.csv"), "{err}");
    assert_eq!(
        run(&config, "r", &[])
            .load("rows", None)
            .unwrap()
            .to_json()
            .unwrap(),
        json!([{"a": 1}])
    );
    assert!(run(&config, "v2", &[]).save("vrows", bad).is_err());
    let after = run(&config, "v3", &[]);
    assert!(!after.exists("vrows").unwrap());
    assert!(matches!(
        after.load("vrows", None),
        Err(CatalogError::NoVersion { version: None, .. })
    ));
}
