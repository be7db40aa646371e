//! Where file datasets keep their bytes.
//!
//! * [`Storage`]: a small sync interface (read, write atomically, exists,
//!   list a folder, delete) that every file dataset goes through (see
//!   [`crate::file::FileTarget`]).
//! * [`LocalStorage`]: the local file system, with the rules of
//!   [`crate::file::atomic_write`] (locked temporary sibling renamed into
//!   place, saves follow symlinks, never replace a directory, FIFO, socket
//!   or device node). Plain paths and `file://` URLs always use it.
//! * [`StorageRegistry`]: URL scheme → backend factory, explicit (no global
//!   state; a scheme registered twice is an error). The catalog knows no
//!   object store of its own: the edge (weft-session's default project
//!   code, the CLI) registers one, such as `weft-object-store`'s `s3`,
//!   `gs`, `az` and `memory`.
//!
//! Object-store locations are carried as paths holding the URL
//! (`s3://bucket/data/cars.csv`), so versioned layouts
//! (`<url>/<version>/<basename>`) and errors read the same as on disk; the
//! backend that made them is the only one that interprets them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::CatalogError;

/// A boxed error from a storage backend (the typed source is kept).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a save writes: called once with the destination (a buffered
/// temporary file on disk, an in-memory buffer for one object-store PUT);
/// an `Err` message aborts the save, and nothing is left behind.
pub type WriteFn<'a> = Box<dyn FnOnce(&mut (dyn Write + Send)) -> Result<(), String> + 'a>;

/// Why an object-store request failed (the source of
/// [`CatalogError::Storage`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object (or the bucket) does not exist.
    #[error("the object does not exist ({source})")]
    NotFound {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The store refused the request (permissions, credentials, a failed
    /// precondition, a rejected PUT).
    #[error("the store refused the request: {source}")]
    Refused {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The request did not complete in time.
    #[error("no answer within {seconds} s")]
    Timeout {
        /// The limit that passed.
        seconds: u64,
    },
    /// The location is not a valid object path for this store.
    #[error("invalid object location: {message}")]
    InvalidLocation {
        /// Why.
        message: String,
    },
    /// Any other failure (network, server error, ...).
    #[error("{source}")]
    Failed {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Sync access to one storage location space (the local disk, or one
/// bucket with one set of credentials). Paths are absolute local paths for
/// [`LocalStorage`] and URLs (`s3://bucket/key`) for object stores. Every
/// error names the dataset and the path or URL.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The URL scheme this storage serves (`file`, `s3`, `memory`, ...).
    fn scheme(&self) -> &str;

    /// Reads a whole file or object.
    fn read(&self, dataset: &str, path: &Path) -> Result<Vec<u8>, CatalogError>;

    /// Writes a file or object atomically: readers see the old content or
    /// the whole new one, never a part (on disk: a temporary sibling renamed
    /// into place; on an object store: one PUT).
    fn write(&self, dataset: &str, path: &Path, write: WriteFn<'_>) -> Result<(), CatalogError>;

    /// Whether a file or object exists at `path`.
    fn exists(&self, dataset: &str, path: &Path) -> Result<bool, CatalogError>;

    /// Every file or object under the folder (or key prefix) `dir`,
    /// recursively, skipping entries whose name starts with `.` (temporary
    /// files); sorted. A missing folder is an error on disk and an empty
    /// list on an object store (which has no folders).
    fn list(&self, dataset: &str, dir: &Path) -> Result<Vec<PathBuf>, CatalogError>;

    /// Deletes a file or object (a missing one is not an error).
    fn delete(&self, dataset: &str, path: &Path) -> Result<(), CatalogError>;

    /// The versions present under a versioned dataset's folder `dir`: the
    /// `<version>` of every `<dir>/<version>/<basename>` that exists.
    fn versions(&self, dataset: &str, dir: &Path, basename: &str) -> Result<Vec<String>, CatalogError> {
        Ok(self
            .list(dataset, dir)?
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(dir).ok()?;
                let mut parts = rel.iter();
                let (version, file) = (parts.next()?, parts.next()?);
                (parts.next().is_none() && file == std::ffi::OsStr::new(basename))
                    .then(|| version.to_string_lossy().to_string())
            })
            .filter(|v| !v.starts_with('.'))
            .collect())
    }

    /// Before a versioned save into `dir`: removes what killed saves left
    /// behind (the temporary files of [`LocalStorage`]; object stores leave
    /// nothing, so the default does nothing).
    fn remove_stale_temps(&self, _dir: &Path, _basename: &str) {}

    /// Whether `path` is an existing folder, for folder datasets: `None` if
    /// it is, else why not. The default (object stores, which have no
    /// folders) asks whether any object lives under the prefix.
    fn folder_unavailable(&self, dataset: &str, dir: &Path) -> Option<String> {
        match self.list(dataset, dir) {
            Ok(found) if !found.is_empty() => None,
            Ok(_) => Some("no object exists under this prefix".to_string()),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The local file system (today's rules: see [`crate::file::atomic_write`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalStorage;

impl LocalStorage {
    /// A shared handle.
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(LocalStorage)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

impl Storage for LocalStorage {
    fn scheme(&self) -> &str {
        "file"
    }

    fn read(&self, dataset: &str, path: &Path) -> Result<Vec<u8>, CatalogError> {
        std::fs::read(path).map_err(|source| CatalogError::Io {
            dataset: dataset.to_string(),
            path: path.to_path_buf(),
            source,
        })
    }

    fn write(&self, dataset: &str, path: &Path, write: WriteFn<'_>) -> Result<(), CatalogError> {
        crate::file::atomic_write(dataset, path, |w| write(w))
    }

    fn exists(&self, dataset: &str, path: &Path) -> Result<bool, CatalogError> {
        match std::fs::metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CatalogError::Io {
                dataset: dataset.to_string(),
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn list(&self, dataset: &str, dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
        let mut out = Vec::new();
        walk(dir, &mut out).map_err(|source| CatalogError::Io {
            dataset: dataset.to_string(),
            path: dir.to_path_buf(),
            source,
        })?;
        out.sort();
        Ok(out)
    }

    fn delete(&self, dataset: &str, path: &Path) -> Result<(), CatalogError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CatalogError::SaveIo {
                dataset: dataset.to_string(),
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// One folder listing and one `stat` per entry (no deep walk).
    fn versions(&self, _dataset: &str, dir: &Path, basename: &str) -> Result<Vec<String>, CatalogError> {
        Ok(std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().join(basename).exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|v| !v.starts_with('.'))
            .collect())
    }

    fn remove_stale_temps(&self, dir: &Path, basename: &str) {
        crate::file::remove_stale_version_temps(dir, basename);
    }

    fn folder_unavailable(&self, _dataset: &str, dir: &Path) -> Option<String> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some("it is not a folder".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("the folder does not exist".to_string())
            }
            Err(e) => Some(e.to_string()),
        }
    }
}

/// What a [`StorageFactory`] is asked for: the storage of one URL.
#[derive(Clone, Copy, Debug)]
pub struct StorageRequest<'a> {
    /// The dataset that needs it (for errors).
    pub dataset: &'a str,
    /// The URL's scheme (`s3`).
    pub scheme: &'a str,
    /// The whole URL as configured (`s3://bucket/data/cars.csv`).
    pub url: &'a str,
    /// The entry's resolved `credentials`, if it names some.
    pub credentials: Option<&'a Value>,
}

/// Builds (or reuses) the storage for a URL; an `Err` says what is wrong
/// with the URL or the credentials.
pub type StorageFactory =
    Arc<dyn Fn(&StorageRequest<'_>) -> Result<Arc<dyn Storage>, BoxError> + Send + Sync>;

/// URL scheme → storage backend, explicit (no global state). Plain paths
/// and `file://` always mean [`LocalStorage`]; `file` cannot be registered.
#[derive(Clone, Default)]
pub struct StorageRegistry {
    schemes: BTreeMap<String, StorageFactory>,
}

impl fmt::Debug for StorageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageRegistry")
            .field("schemes", &self.schemes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The scheme of a URL-like `filepath` (`s3` for `s3://b/k`), if it has one.
///
/// ```
/// use weft_catalog::storage::url_scheme;
/// assert_eq!(url_scheme("s3://bucket/x.csv"), Some("s3"));
/// assert_eq!(url_scheme("data/x.csv"), None);
/// ```
pub fn url_scheme(raw: &str) -> Option<&str> {
    let (scheme, _) = raw.split_once("://")?;
    let valid = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

impl StorageRegistry {
    /// A registry with no object store (local paths and `file://` only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the backend of a URL scheme (lowercase, as written in
    /// URLs). A scheme registered twice, and `file`, are errors.
    pub fn register(&mut self, scheme: &str, factory: StorageFactory) -> Result<(), CatalogError> {
        let refuse = |message: String| CatalogError::Config {
            problems: vec![crate::ConfigProblem::new(None, None, message)],
        };
        if scheme == "file" {
            return Err(refuse(
                "the `file` scheme is the local file system and cannot be registered".to_string(),
            ));
        }
        if url_scheme(&format!("{scheme}://x")) != Some(scheme) {
            return Err(refuse(format!("`{scheme}` is not a valid URL scheme")));
        }
        if self.schemes.contains_key(scheme) {
            return Err(refuse(format!("storage scheme `{scheme}` is already registered")));
        }
        self.schemes.insert(scheme.to_string(), factory);
        Ok(())
    }

    /// Registered schemes (without `file`), sorted.
    pub fn schemes(&self) -> impl Iterator<Item = &str> {
        self.schemes.keys().map(String::as_str)
    }

    /// The storage for `url` (which has a scheme other than `file`), or a
    /// message naming the URL and what is wrong: an unknown scheme (with the
    /// known ones), or the backend's refusal (malformed URL, missing or
    /// invalid credentials).
    pub fn resolve(
        &self,
        dataset: &str,
        url: &str,
        credentials: Option<&Value>,
    ) -> Result<Arc<dyn Storage>, String> {
        let Some(scheme) = url_scheme(url) else {
            return Err(format!("`{url}` is not a URL (`scheme://...`)"));
        };
        let Some(factory) = self.schemes.get(scheme) else {
            let known: Vec<String> = std::iter::once("file".to_string())
                .chain(self.schemes.keys().cloned())
                .map(|s| format!("`{s}://`"))
                .collect();
            return Err(format!(
                "`{url}`: no storage backend for the scheme `{scheme}://` (known: {}, and plain paths)",
                known.join(", ")
            ));
        };
        factory(&StorageRequest {
            dataset,
            scheme,
            url,
            credentials,
        })
        .map_err(|e| {
            let mut message = format!("`{url}`: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            message
        })
    }
}

/// Where a run-scoped dataset stored at the object URL `url` really lives:
/// `<scheme>://<bucket>/.weft/runs/<run>/<key>`, where `<run>` is the last
/// component of the run's scope folder (its run id). The output stays on
/// the object store (a remote worker cannot write the master's disk), and
/// two overlapping runs never share it.
///
/// ```
/// use std::path::Path;
/// use weft_catalog::storage::scoped_url;
/// let u = scoped_url(Path::new("/proj/.weft/runs/r1"), "s3://b/data/x.csv");
/// assert_eq!(u, "s3://b/.weft/runs/r1/data/x.csv");
/// ```
pub fn scoped_url(scope_dir: &Path, url: &str) -> String {
    let run = scope_dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".to_string());
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    format!("{scheme}://{bucket}/.weft/runs/{run}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A storage kept in a map, to drive the catalog without a backend crate.
    #[derive(Debug, Default)]
    struct MapStorage(std::sync::Mutex<BTreeMap<PathBuf, Vec<u8>>>);

    impl Storage for MapStorage {
        fn scheme(&self) -> &str {
            "map"
        }
        fn read(&self, dataset: &str, path: &Path) -> Result<Vec<u8>, CatalogError> {
            self.0
                .lock()
                .unwrap()
                .get(path)
                .cloned()
                .ok_or_else(|| CatalogError::Storage {
                    dataset: dataset.into(),
                    url: path.display().to_string(),
                    action: "read",
                    source: StorageError::NotFound {
                        source: "no such key".into(),
                    },
                })
        }
        fn write(&self, _: &str, path: &Path, write: WriteFn<'_>) -> Result<(), CatalogError> {
            let mut buf = Vec::new();
            write(&mut buf).unwrap();
            self.0.lock().unwrap().insert(path.to_path_buf(), buf);
            Ok(())
        }
        fn exists(&self, _: &str, path: &Path) -> Result<bool, CatalogError> {
            Ok(self.0.lock().unwrap().contains_key(path))
        }
        fn list(&self, _: &str, dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(dir))
                .cloned()
                .collect())
        }
        fn delete(&self, _: &str, path: &Path) -> Result<(), CatalogError> {
            self.0.lock().unwrap().remove(path);
            Ok(())
        }
    }

    fn factory(storage: Arc<MapStorage>) -> StorageFactory {
        Arc::new(move |_req: &StorageRequest<'_>| Ok(Arc::clone(&storage) as Arc<dyn Storage>))
    }

    #[test]
    fn a_scheme_registered_twice_or_file_is_refused() {
        let storage = Arc::new(MapStorage::default());
        let mut r = StorageRegistry::new();
        r.register("map", factory(Arc::clone(&storage))).unwrap();
        let twice = r.register("map", factory(Arc::clone(&storage))).unwrap_err();
        assert!(
            twice
                .to_string()
                .contains("storage scheme `map` is already registered"),
            "{twice}"
        );
        let file = r.register("file", factory(Arc::clone(&storage))).unwrap_err();
        assert!(file.to_string().contains("`file` scheme"), "{file}");
        let bad = r.register("no scheme", factory(storage)).unwrap_err();
        assert!(bad.to_string().contains("not a valid URL scheme"), "{bad}");
        assert_eq!(r.schemes().collect::<Vec<_>>(), ["map"]);
    }

    #[test]
    fn an_unknown_scheme_names_the_dataset_the_url_and_the_known_schemes() {
        let mut types = crate::DatasetTypeRegistry::with_builtins();
        types
            .register_storage("map", factory(Arc::new(MapStorage::default())))
            .unwrap();
        let err = crate::CatalogConfig::parse(
            &json!({"cars": {"type": "json.JSONDataset", "filepath": "ftp://host/cars.json"}}),
            &json!({}),
            &types,
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains("`cars`"), "{text}");
        assert!(text.contains("ftp://host/cars.json"), "{text}");
        assert!(text.contains("`map://`") && text.contains("`file://`"), "{text}");
    }

    #[test]
    fn versions_newest_pins_and_run_scope_go_through_the_storage() {
        let storage = Arc::new(MapStorage::default());
        let mut types = crate::DatasetTypeRegistry::with_builtins();
        types
            .register_storage("map", factory(Arc::clone(&storage)))
            .unwrap();
        let config = crate::CatalogConfig::parse(
            &json!({
                "v": {"type": "json.JSONDataset", "filepath": "map://b/v.json", "versioned": true},
                "out": {"type": "json.JSONDataset", "filepath": "map://b/out.json"},
            }),
            &json!({}),
            &types,
        )
        .unwrap();
        let run = |version: &str, pin: Option<&str>, scope: Option<&str>| {
            config
                .build(&crate::BuildOptions {
                    save_version: version.into(),
                    load_versions: pin
                        .map(|p| [("v".to_string(), p.to_string())].into())
                        .unwrap_or_default(),
                    run_scope: scope.map(|s| crate::RunScope {
                        dir: PathBuf::from("/p/.weft/runs").join(s),
                        datasets: ["out".to_string()].into(),
                    }),
                    ..Default::default()
                })
                .unwrap()
        };
        for (version, value) in [("2026-01-01", 1), ("2026-01-02", 2)] {
            run(version, None, None)
                .save("v", weft_pipeline::Data::new(json!(value)))
                .unwrap();
        }
        let keys: Vec<PathBuf> = storage.0.lock().unwrap().keys().cloned().collect();
        assert!(
            keys.contains(&PathBuf::from("map://b/v.json/2026-01-02/v.json")),
            "{keys:?}"
        );
        let newest = run("r3", None, None);
        assert_eq!(newest.load("v", None).unwrap().to_json().unwrap(), json!(2));
        assert_eq!(newest.loaded_versions()["v"], "2026-01-02");
        let pinned = run("r4", Some("2026-01-01"), None);
        assert_eq!(pinned.load("v", None).unwrap().to_json().unwrap(), json!(1));
        let missing = run("r5", Some("2020-01-01"), None).load("v", None).unwrap_err();
        assert!(matches!(missing, CatalogError::NoVersion { .. }), "{missing}");

        let (a, b) = (run("ra", None, Some("ra")), run("rb", None, Some("rb")));
        a.save("out", weft_pipeline::Data::new(json!("a"))).unwrap();
        b.save("out", weft_pipeline::Data::new(json!("b"))).unwrap();
        assert_eq!(a.load("out", None).unwrap().to_json().unwrap(), json!("a"));
        assert_eq!(b.load("out", None).unwrap().to_json().unwrap(), json!("b"));
        assert_eq!(
            a.scoped_paths()["out"],
            PathBuf::from("map://b/.weft/runs/ra/out.json")
        );
        assert!(
            !storage
                .0
                .lock()
                .unwrap()
                .contains_key(Path::new("map://b/out.json"))
        );
    }
}
