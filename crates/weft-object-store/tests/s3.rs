//! Datasets on a real S3-compatible server: the moto server that
//! scripts/with-s3.sh starts on 127.0.0.1 (`WEFT_TEST_S3_ENDPOINT`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_catalog::{
    BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry, RunScope, StorageError,
};
use weft_object_store::{ObjectStoreOptions, dataset_types, register};
use weft_pipeline::{Data, DataType};

fn endpoint() -> String {
    std::env::var("WEFT_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_S3_ENDPOINT is not set: this test needs a real S3-compatible server; run it \
             through scripts/with-s3.sh (it starts moto on 127.0.0.1), e.g. \
             `scripts/with-s3.sh cargo nextest run -p weft-object-store`"
        )
    })
}

/// A new bucket on the server (moto takes unsigned bucket creation).
fn bucket() -> String {
    let name = format!("weft-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    ureq::put(&format!("{}/{name}", endpoint())).send_empty().unwrap();
    name
}

fn credentials() -> Value {
    json!({
        // fsspec's layout: client_kwargs.endpoint_url.
        "moto": {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint(), "region_name": "us-east-1"}},
        // The flat layout.
        "flat": {"key": "testing", "secret": "testing", "endpoint_url": endpoint(), "region": "us-east-1"},
    })
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

/// Reads an object with a client of its own (the object_store crate
/// directly, not weft's storage): `None` when it does not exist.
fn get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match store.get(&object_store::path::Path::parse(key).unwrap()).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    })
}

#[test]
fn versioned_datasets_on_s3_resolve_newest_and_pinned_versions() {
    let b = bucket();
    let types = dataset_types();
    let config = CatalogConfig::parse(
        &json!({
            "cars": {"type": "csv.CSVDataset", "filepath": format!("s3://{b}/data/cars.csv"), "versioned": true, "credentials": "moto"},
            "table": {"type": "parquet.ParquetDataset", "filepath": format!("s3://{b}/data/table.parquet"), "versioned": true, "credentials": "flat"},
            "plain": {"type": "json.JSONDataset", "filepath": format!("s3://{b}/plain.json"), "credentials": "flat"},
        }),
        &credentials(),
        &types,
    )
    .unwrap();
    let versions = [
        "2026-12-01T10.00.00.000Z-aaaaaaaa",
        "2026-12-01T11.00.00.000Z-bbbbbbbb",
    ];
    for (i, v) in versions.iter().enumerate() {
        let c = run(&config, v, &[]);
        let rows = json!([{"n": i + 1}]);
        c.save("cars", Data::new(rows.clone())).unwrap();
        c.save("table", Data::new(rows)).unwrap();
    }
    // The objects sit at <filepath>/<version>/<basename>, written whole.
    let csv = get(&b, &format!("data/cars.csv/{}/cars.csv", versions[1])).unwrap();
    assert_eq!(String::from_utf8(csv).unwrap(), "n\n2\n");
    let ty = DataType::of::<Value>();
    let newest = run(&config, "2026-12-02T00.00.00.000Z-cccccccc", &[]);
    assert_eq!(
        newest.load("cars", Some(&ty)).unwrap().to_json().unwrap(),
        json!([{"n": 2}])
    );
    assert_eq!(
        newest.load("table", Some(&ty)).unwrap().to_json().unwrap(),
        json!([{"n": 2}])
    );
    assert_eq!(newest.loaded_versions()["cars"], versions[1]);
    let pinned = run(
        &config,
        "2026-12-02T00.00.00.000Z-dddddddd",
        &[("cars", versions[0]), ("table", versions[0])],
    );
    assert_eq!(
        pinned.load("cars", Some(&ty)).unwrap().to_json().unwrap(),
        json!([{"n": 1}])
    );
    assert_eq!(
        pinned.load("table", Some(&ty)).unwrap().to_json().unwrap(),
        json!([{"n": 1}])
    );
    let again = run(&config, versions[0], &[])
        .save("cars", Data::new(json!([{"n": 9}])))
        .unwrap_err();
    assert!(matches!(again, CatalogError::VersionExists { .. }), "{again}");
    // Unversioned objects are replaced whole.
    for value in [json!({"v": 1}), json!({"v": 2})] {
        run(&config, "r", &[])
            .save("plain", Data::new(value.clone()))
            .unwrap();
        assert_eq!(
            run(&config, "r", &[])
                .load("plain", None)
                .unwrap()
                .to_json()
                .unwrap(),
            value
        );
    }
}

#[test]
fn run_scoped_outputs_and_partitions_on_s3() {
    let b = bucket();
    let types = dataset_types();
    let config = CatalogConfig::parse(
        &json!({
            "out": {"type": "json.JSONDataset", "filepath": format!("s3://{b}/data/out.json"), "credentials": "moto"},
            "parts": {"type": "partitions.PartitionedDataset", "path": format!("s3://{b}/parts"), "dataset": "json.JSONDataset", "filename_suffix": ".json", "credentials": "moto"},
        }),
        &credentials(),
        &types,
    )
    .unwrap();
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
    let (x, y) = (scoped("run-x"), scoped("run-y"));
    x.save("out", Data::new(json!("x"))).unwrap();
    y.save("out", Data::new(json!("y"))).unwrap();
    assert_eq!(x.load("out", None).unwrap().to_json().unwrap(), json!("x"));
    assert_eq!(y.load("out", None).unwrap().to_json().unwrap(), json!("y"));
    assert_eq!(get(&b, ".weft/runs/run-y/data/out.json").unwrap(), b"\"y\"\n");
    assert!(get(&b, "data/out.json").is_none());

    let c = run(&config, "r", &[]);
    c.save("parts", Data::new(json!({"2026/a": 1, "b": {"x": 2}})))
        .unwrap();
    let back = run(&config, "r2", &[]).load("parts", None).unwrap();
    let parts = back.downcast_ref::<weft_catalog::Partitions>().unwrap();
    assert_eq!(parts.ids().collect::<Vec<_>>(), ["2026/a", "b"]);
    assert_eq!(parts.load("b", None).unwrap().to_json().unwrap(), json!({"x": 2}));
}

#[test]
fn missing_objects_and_refused_puts_name_the_dataset_and_the_url() {
    let b = bucket();
    let types = dataset_types();
    let config = CatalogConfig::parse(
        &json!({
            "gone": {"type": "json.JSONDataset", "filepath": format!("s3://{b}/gone.json"), "credentials": "moto"},
            "nobucket": {"type": "json.JSONDataset", "filepath": "s3://weft-no-such-bucket-here/x.json", "credentials": "moto"},
        }),
        &credentials(),
        &types,
    )
    .unwrap();
    let c = run(&config, "r", &[]);
    assert!(!c.exists("gone").unwrap());
    let err = c.load("gone", None).unwrap_err();
    let CatalogError::Storage {
        dataset, url, source, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (dataset.as_str(), url.as_str()),
        ("gone", format!("s3://{b}/gone.json").as_str())
    );
    assert!(matches!(source, StorageError::NotFound { .. }), "{source:?}");

    let err = c.save("nobucket", Data::new(json!(1))).unwrap_err();
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
        ("nobucket", "s3://weft-no-such-bucket-here/x.json", "write")
    );
    assert!(matches!(source, StorageError::Refused { .. }), "{source:?}");
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_limits() {
    // A port nothing listens on: connection refused, retried, then an error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut types = DatasetTypeRegistry::with_builtins();
    register(
        &mut types,
        ObjectStoreOptions {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            max_retries: 1,
            operation_timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    let config = CatalogConfig::parse(
        &json!({
            "x": {"type": "json.JSONDataset", "filepath": "s3://b/x.json", "credentials": "dead"},
            "v": {"type": "json.JSONDataset", "filepath": "s3://b/v.json", "credentials": "dead", "versioned": true},
        }),
        &json!({"dead": {"key": "k", "secret": "s", "endpoint_url": format!("http://127.0.0.1:{port}")}}),
        &types,
    )
    .unwrap();
    let started = Instant::now();
    let err = run(&config, "r", &[]).save("x", Data::new(json!(1))).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, CatalogError::Storage { action: "write", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("s3://b/x.json"), "{err}");
    // A failed request is an error, never taken for "missing" or "no version yet".
    let c = run(&config, "r", &[]);
    let exists = c.exists("x").unwrap_err();
    assert!(
        matches!(exists, CatalogError::Storage { action: "check", .. }),
        "{exists:?}"
    );
    let newest = c.load("v", None).unwrap_err();
    assert!(
        matches!(newest, CatalogError::Storage { action: "list", .. }),
        "{newest:?}"
    );
}
