//! pickle.PickleDataset on real files: typed round trips, versioned saves,
//! a real `python3` reading what weft wrote (and weft reading what Python
//! wrote), and errors naming the dataset and field.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry};
use weft_pipeline::{Data, DataType, serde_data};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Regressor {
    name: String,
    coefficients: Vec<f64>,
    intercept: f64,
    features: BTreeMap<String, i64>,
    fitted: bool,
    note: Option<String>,
}
serde_data!(Regressor);

fn regressor() -> Regressor {
    Regressor {
        name: "linear".into(),
        coefficients: vec![0.5, -1.25, 3.0],
        intercept: 2.5,
        features: [("engines".to_string(), 1), ("crew".to_string(), 2)].into(),
        fitted: true,
        note: None,
    }
}

fn registry() -> DatasetTypeRegistry {
    let mut r = DatasetTypeRegistry::with_builtins();
    weft_pickle::register(&mut r).unwrap();
    r
}

fn try_catalog(root: &Path, entries: Value, version: &str) -> Result<Catalog, CatalogError> {
    CatalogConfig::parse(&entries, &json!({}), &registry())?.build(&BuildOptions {
        project_dir: root.to_path_buf(),
        save_version: version.into(),
        load_versions: BTreeMap::new(),
        parameters: Value::Null,
        run_scope: None,
    })
}

fn python(code: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .output()
        .expect("python3 runs (the test needs it)");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_typed_value_round_trips_and_python_pickle_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({"regressor": {"type": "pickle.PickleDataset", "filepath": "models/regressor.pickle"}}),
        "v1",
    )
    .unwrap();
    cat.save("regressor", Data::new(regressor())).unwrap();
    let back = cat.load("regressor", Some(&DataType::of::<Regressor>())).unwrap();
    assert_eq!(back.downcast_ref::<Regressor>(), Some(&regressor()));
    // Untyped: a JSON value.
    let untyped = cat.load("regressor", None).unwrap().to_json().unwrap();
    assert_eq!(untyped["coefficients"], json!([0.5, -1.25, 3.0]));
    assert_eq!(untyped["note"], Value::Null);

    // Python reads it with the standard library.
    let path = dir.path().join("models/regressor.pickle");
    let printed = python(&format!(
        "import pickle, json; d = pickle.load(open({:?}, 'rb')); \
         assert isinstance(d, dict) and d['note'] is None and d['fitted'] is True; \
         print(json.dumps(d, sort_keys=True))",
        path.display().to_string()
    ));
    let from_python: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        from_python,
        json!({"name": "linear", "coefficients": [0.5, -1.25, 3.0], "intercept": 2.5,
               "features": {"crew": 2, "engines": 1}, "fitted": true, "note": null})
    );
}

#[test]
fn a_pickle_written_by_python_loads_and_protocol_2_is_readable_by_python() {
    let dir = tempfile::tempdir().unwrap();
    let from_py = dir.path().join("from_python.pkl");
    python(&format!(
        "import pickle; pickle.dump({{'name': 'rf', 'coefficients': [1.0, 2.0], 'intercept': 0.0, \
         'features': {{'a': 3}}, 'fitted': False, 'note': 'py'}}, open({:?}, 'wb'), protocol=5)",
        from_py.display().to_string()
    ));
    let cat = try_catalog(
        dir.path(),
        json!({
            "py": {"type": "pickle.PickleDataset", "filepath": "from_python.pkl"},
            "v2": {"type": "pickle.PickleDataset", "filepath": "v2.pkl", "save_args": {"protocol": 2}},
        }),
        "v1",
    )
    .unwrap();
    let loaded = cat.load("py", Some(&DataType::of::<Regressor>())).unwrap();
    let loaded = loaded.downcast_ref::<Regressor>().unwrap();
    assert_eq!(loaded.name, "rf");
    assert_eq!(loaded.features["a"], 3);
    assert_eq!(loaded.note.as_deref(), Some("py"));

    cat.save("v2", Data::new(vec![1_i64, 2, 3])).unwrap();
    let bytes = std::fs::read(dir.path().join("v2.pkl")).unwrap();
    assert_eq!(&bytes[..2], b"\x80\x02", "protocol 2 header");
    let printed = python(&format!(
        "import pickle; print(pickle.load(open({:?}, 'rb')))",
        dir.path().join("v2.pkl").display().to_string()
    ));
    assert_eq!(printed.trim(), "[1, 2, 3]");
}

#[test]
fn versioned_saves_keep_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let entry = json!({"regressor": {"type": "pickle.PickleDataset",
        "filepath": "data/06_models/regressor.pickle", "versioned": true}});
    let first = try_catalog(dir.path(), entry.clone(), "2026-01-01T00.00.00.000Z").unwrap();
    first.save("regressor", Data::new(regressor())).unwrap();
    let second = try_catalog(dir.path(), entry, "2026-01-02T00.00.00.000Z").unwrap();
    let mut newer = regressor();
    newer.intercept = 9.0;
    second.save("regressor", Data::new(newer.clone())).unwrap();
    let base = dir.path().join("data/06_models/regressor.pickle");
    assert!(base.join("2026-01-01T00.00.00.000Z/regressor.pickle").is_file());
    assert!(base.join("2026-01-02T00.00.00.000Z/regressor.pickle").is_file());
    let latest = second
        .load("regressor", Some(&DataType::of::<Regressor>()))
        .unwrap();
    assert_eq!(latest.downcast_ref::<Regressor>(), Some(&newer));
}

#[test]
fn python_objects_backends_and_bad_args_are_errors_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let err = |entry: Value| {
        try_catalog(dir.path(), json!({"model": entry}), "v1")
            .err()
            .expect("the entry is refused")
            .to_string()
    };
    let e = err(json!({"type": "pickle.PickleDataset", "filepath": "m.pkl", "backend": "joblib"}));
    assert!(
        e.contains("model") && e.contains("backend") && e.contains("Python"),
        "{e}"
    );
    let e = err(json!({"type": "pickle.PickleDataset", "filepath": "m.pkl", "backend": "marshal"}));
    assert!(
        e.contains("model") && e.contains("backend: expected `pickle`"),
        "{e}"
    );
    let e = err(json!({"type": "pickle.PickleDataset", "filepath": "m.pkl", "save_args": {"protocol": 5}}));
    assert!(e.contains("model") && e.contains("save_args.protocol"), "{e}");
    let e = err(
        json!({"type": "pickle.PickleDataset", "filepath": "m.pkl", "load_args": {"encoding": "latin1"}}),
    );
    assert!(e.contains("model") && e.contains("load_args.encoding"), "{e}");

    // A pickle of a Python class instance.
    let obj = dir.path().join("obj.pkl");
    python(&format!(
        "import pickle, fractions; pickle.dump(fractions.Fraction(1, 3), open({:?}, 'wb'))",
        obj.display().to_string()
    ));
    std::fs::write(dir.path().join("text.pkl"), "not a pickle").unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({
            "obj": {"type": "pickle.PickleDataset", "filepath": "obj.pkl"},
            "text": {"type": "pickle.PickleDataset", "filepath": "text.pkl"},
        }),
        "v1",
    )
    .unwrap();
    let e = cat.load("obj", None).unwrap_err().to_string();
    assert!(e.contains("obj") && e.contains("Python object"), "{e}");
    let e = cat.load("text", None).unwrap_err().to_string();
    assert!(e.contains("text.pkl") && e.contains("not a pickle"), "{e}");
    // Wrong shape for the requested type.
    let e = cat
        .load("text", Some(&DataType::of::<Regressor>()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("text"), "{e}");
}
