//! `pickle.PickleDataset` for weft's catalog: any serde-backed value saved
//! in Python's pickle format with [serde_pickle], so Python can
//! `pickle.load` it, and loaded back decoded into the type the node asks
//! for (a JSON value when it asks for nothing in particular).
//!
//! Kedro's arguments:
//!
//! - `backend`: `pickle` (the default) only. `joblib`, `dill`,
//!   `cloudpickle` and `compress_pickle` are Python libraries; naming one is
//!   an error that says so.
//! - `save_args.protocol`: 2 or 3 (default 3; serde-pickle writes no other
//!   protocol). Loads read protocols 0 to 5.
//!
//! What it holds: plain data — dicts, lists, tuples, numbers, strings,
//! booleans, `None` — the shape serde gives Rust structs, maps, vectors and
//! options. A pickle of a Python object (a fitted scikit-learn model, a
//! pandas DataFrame, any class instance) cannot be loaded: the load error
//! says so and suggests a portable format. Saves go through the catalog's
//! file target, so versioning and atomic replacement work as for every file
//! dataset.

use std::sync::Arc;

use serde_json::Value;
use weft_catalog::file::FileTarget;
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, DatasetTypeRegistry, LoadType};
use weft_pipeline::{Data, DataType};

/// The type names this crate registers.
pub const TYPE_NAMES: &[&str] = &["pickle.PickleDataset"];

/// The `backend` values Kedro accepts that are Python libraries weft
/// cannot run.
const PYTHON_BACKENDS: &[&str] = &["joblib", "dill", "cloudpickle", "compress_pickle"];

/// Registers `pickle.PickleDataset` in `registry` (a name registered twice
/// is an error).
pub fn register(registry: &mut DatasetTypeRegistry) -> Result<(), CatalogError> {
    for name in TYPE_NAMES {
        registry.register(name, Arc::new(factory))?;
    }
    Ok(())
}

fn factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    match spec.config.get("backend") {
        None | Some(Value::Null) => {}
        Some(Value::String(b)) if b == "pickle" => {}
        Some(Value::String(b)) if PYTHON_BACKENDS.contains(&b.as_str()) => {
            return Err(format!(
                "backend: `{b}` is a Python library, which weft (Rust) cannot run; use `backend: pickle` for plain data (dicts, lists, numbers, strings), or have a command node write a portable format (JSON, Parquet)"
            ));
        }
        Some(other) => {
            return Err(format!("backend: expected `pickle`, got {other}"));
        }
    }
    let (target, filepath) = spec.file_target("filepath")?;
    let load_args = spec.args("load_args")?;
    if let Some((key, _)) = load_args.as_object().and_then(|m| m.iter().next()) {
        return Err(format!(
            "load_args.{key}: pickle.PickleDataset takes no load arguments (the Python keywords of pickle.loads do not apply)"
        ));
    }
    let save_args = spec.args("save_args")?;
    let mut proto_v2 = false;
    if let Some(map) = save_args.as_object() {
        for (key, v) in map {
            match (key.as_str(), v.as_u64()) {
                ("protocol", Some(2)) => proto_v2 = true,
                ("protocol", Some(3)) => proto_v2 = false,
                ("protocol", _) => {
                    return Err(format!(
                        "save_args.protocol: weft writes pickle protocol 2 or 3, got {v}"
                    ));
                }
                _ => {
                    return Err(format!(
                        "save_args.{key}: unknown argument (pickle.PickleDataset takes `protocol`)"
                    ));
                }
            }
        }
    }
    Ok(Arc::new(PickleDataset {
        target,
        type_name: spec.type_name.to_string(),
        filepath,
        proto_v2,
    }))
}

/// A serde-backed value in one pickle file (optionally versioned).
pub struct PickleDataset {
    target: FileTarget,
    type_name: String,
    filepath: String,
    proto_v2: bool,
}

impl PickleDataset {
    fn load_err(&self, path: &std::path::Path, message: impl ToString) -> CatalogError {
        CatalogError::Load {
            dataset: self.target.dataset.clone(),
            path: Some(path.to_path_buf()),
            message: message.to_string(),
        }
    }

    fn save_err(&self, message: impl ToString) -> CatalogError {
        CatalogError::Save {
            dataset: self.target.dataset.clone(),
            path: Some(self.target.save_file()),
            message: message.to_string(),
        }
    }

    /// A load error for what serde-pickle reported, explaining Python
    /// objects when the file holds one.
    fn decode_err(&self, path: &std::path::Path, e: impl ToString) -> CatalogError {
        let e = e.to_string();
        let hint = if e.contains("global") || e.contains("Unresolved") || e.contains("unsupported") {
            "; the file holds a Python object (a class instance such as a scikit-learn model or a DataFrame), which cannot be read in Rust: only plain data (dicts, lists, tuples, numbers, strings, booleans, None) loads. Have a command node write a portable format (JSON, Parquet, ONNX) instead"
        } else {
            ""
        };
        self.load_err(path, format!("not a pickle of plain data: {e}{hint}"))
    }
}

impl Dataset for PickleDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (path, bytes) = self.target.read()?;
        let options = serde_pickle::DeOptions::new();
        match request {
            Some(ty) if ty.is_decodable() => {
                let mut de = serde_pickle::Deserializer::new(std::io::Cursor::new(&bytes), options);
                let data = ty
                    .decode(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
                    .map_err(|e| self.decode_err(&path, e))?;
                de.end().map_err(|e| self.decode_err(&path, e))?;
                Ok(data)
            }
            Some(ty) => Err(self.load_err(
                &path,
                format!(
                    "type `{ty}` cannot be decoded from a pickle; declare it with serde_data! or ask for a JSON value"
                ),
            )),
            None => {
                let value: Value =
                    serde_pickle::from_slice(&bytes, options).map_err(|e| self.decode_err(&path, e))?;
                Ok(Data::new(value))
            }
        }
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let value = data.as_serialize().ok_or_else(|| {
            self.save_err(format!(
                "values of type `{}` cannot be pickled: declare the type with serde_data! (weft pickles serde-backed data, not Rust objects)",
                data.type_name()
            ))
        })?;
        let options = if self.proto_v2 {
            serde_pickle::SerOptions::new().proto_v2()
        } else {
            serde_pickle::SerOptions::new()
        };
        let bytes = serde_pickle::to_vec(&value, options).map_err(|e| self.save_err(e))?;
        self.target
            .write_with(|w| w.write_all(&bytes).map_err(|e| e.to_string()))
            .map(|_| ())
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        self.target.try_exists()
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.target.dataset.clone(),
            type_name: self.type_name.clone(),
            filepath: Some(self.filepath.clone()),
            versioned: self.target.versioned,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Decodes
    }

    fn file_target(&self) -> Option<&FileTarget> {
        Some(&self.target)
    }
}
