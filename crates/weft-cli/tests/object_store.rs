//! `weft run` on a project whose catalog keeps its datasets on S3: the real
//! moto server of scripts/with-s3.sh (`WEFT_TEST_S3_ENDPOINT`), credentials
//! from conf/local/credentials.yml, versions, `--load-versions`, `weft runs`.

use std::path::Path;
use std::process::Command;

fn endpoint() -> String {
    std::env::var("WEFT_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_S3_ENDPOINT is not set: this test needs a real S3-compatible server; run it \
             through scripts/with-s3.sh (it starts moto on 127.0.0.1), e.g. \
             `scripts/with-s3.sh cargo nextest run -p weft-cli`"
        )
    })
}

fn weft(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_ENV")
        .env_remove("WEFT_STORE_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft {args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The JSON saved at `version` of a versioned dataset of the project's
/// catalog, read back through a catalog of its own.
fn saved(catalog_yml: &str, credentials_yml: &str, name: &str, version: &str) -> serde_json::Value {
    let parse = |text: &str| -> serde_json::Value { serde_saphyr::from_str(text).unwrap() };
    let types = weft_object_store::dataset_types();
    let config =
        weft_catalog::CatalogConfig::parse(&parse(catalog_yml), &parse(credentials_yml), &types).unwrap();
    let catalog = config
        .build(&weft_catalog::BuildOptions {
            save_version: "check".into(),
            load_versions: [(name.to_string(), version.to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    catalog.load(name, None).unwrap().to_json().unwrap()
}

#[test]
fn a_project_on_s3_runs_records_and_reloads_a_pinned_version() {
    let endpoint = endpoint();
    let bucket = format!("weft-cli-{}", std::process::id());
    ureq::put(&format!("{endpoint}/{bucket}")).send_empty().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let write = |path: &str, text: String| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("weft.toml", "[project]\nname = \"s3demo\"\n".into());
    write(
        "pipelines.yml",
        "__default__:\n  nodes:\n    - {name: increment, func: add_one, inputs: params:start, outputs: incremented}\n    - {name: total, func: sum, inputs: [incremented, params:offset], outputs: total}\n".into(),
    );
    write("conf/base/parameters.yml", "start: 41\noffset: 0.5\n".into());
    let catalog_yml = format!(
        "incremented:\n  type: json.JSONDataset\n  filepath: s3://{bucket}/data/incremented.json\n  versioned: true\n  credentials: moto\n\
             total:\n  type: json.JSONDataset\n  filepath: s3://{bucket}/data/total.json\n  versioned: true\n  credentials: moto\n"
    );
    let credentials_yml = format!(
        "moto:\n  key: testing\n  secret: testing\n  client_kwargs:\n    endpoint_url: {endpoint}\n    region_name: us-east-1\n"
    );
    write("conf/base/catalog.yml", catalog_yml.clone());
    write("conf/local/credentials.yml", credentials_yml.clone());

    let first = weft(root, &["run", "--json"]);
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["outputs"]["total"], 42.5);
    let first_id = first["run_id"].as_str().unwrap().to_string();
    // The versioned objects are on S3, not on the local disk.
    assert_eq!(
        saved(&catalog_yml, &credentials_yml, "incremented", &first_id),
        42
    );
    assert_eq!(saved(&catalog_yml, &credentials_yml, "total", &first_id), 42.5);
    assert!(!root.join("data").exists());

    let second = weft(root, &["run", "--json", "--params", "start=1"]);
    assert_eq!(second["outputs"]["total"], 2.5);
    let second_id = second["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        saved(&catalog_yml, &credentials_yml, "incremented", &second_id),
        2
    );

    // Only `total`, reading the first run's `incremented` by pin (the newest is the second's).
    let pin = format!("incremented:{first_id}");
    let third = weft(
        root,
        &["run", "--json", "--nodes", "total", "--load-versions", &pin],
    );
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(third["outputs"]["total"], 42.5, "{third}");
    let third_id = third["run_id"].as_str().unwrap().to_string();
    // Without the pin the newest version (the second run's) is read.
    let fourth = weft(root, &["run", "--json", "--nodes", "total"]);
    assert_eq!(fourth["outputs"]["total"], 2.5, "{fourth}");

    let runs = weft(root, &["runs", "list", "--json"]);
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    for id in [&first_id, &second_id, &third_id] {
        assert!(ids.contains(&id.as_str()), "{id} not in {runs}");
    }
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded"),
        "{runs}"
    );
}
