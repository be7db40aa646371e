//! Catalog datasets on object storage: `s3://`, `gs://`, `az://` and
//! `memory://` `filepath`s through the [`object_store`] crate, behind the
//! catalog's sync [`Storage`] interface.
//!
//! * **Registration is explicit**: [`register`] adds the four schemes to a
//!   [`DatasetTypeRegistry`] (a scheme registered twice is an error);
//!   [`dataset_types`] is the built-in types plus these. weft-session's
//!   default project code uses it, so the CLI, `weft serve` and `weft
//!   worker` all know these URLs. Plain paths and `file://` stay on the
//!   local file system (its symlink and temporary-file rules).
//! * **URLs**: `s3://<bucket>/<key>`, `gs://<bucket>/<key>`,
//!   `az://<container>/<key>` (the account comes from the credentials),
//!   `memory://<name>/<key>` (an in-memory store per name, shared by every
//!   catalog built from one registry: for tests). A key must not contain
//!   empty, `.` or `..` segments.
//! * **Credentials** come only from the catalog entry's `credentials:` key
//!   (an entry of `credentials.yml`), with fsspec's names: for S3 `key`,
//!   `secret`, `token` (session token), `endpoint_url` and `region` (also
//!   accepted inside `client_kwargs` as `endpoint_url` / `region_name`, as
//!   s3fs writes them); for GCS `token` (path of a service-account JSON
//!   file) or `service_account_key` (its JSON text); for Azure
//!   `account_name`, `account_key` or `sas_token`, and `endpoint_url`;
//!   everywhere `anon: true` for public data (no signing). Without
//!   credentials (and without `anon`), an `s3`/`gs`/`az` entry is a
//!   configuration error: the library never reads `AWS_*` or other
//!   environment variables, nor instance metadata; write
//!   `key: ${oc.env:AWS_ACCESS_KEY_ID}` in `credentials.yml` to take them
//!   from the environment the CLI hands in.
//! * **Atomic saves**: a save is encoded in memory and sent as one PUT; S3,
//!   GCS and Azure make an object visible whole or not at all, so a reader
//!   sees the previous object or the complete new one, never a part, and a
//!   failed or interrupted save leaves the previous object (or nothing).
//!   There is no rename: no temporary object is ever left behind. Version
//!   folders are key prefixes; the newest version is found by one listing.
//! * **Sync over async**: every backend registered by one [`register`] call
//!   shares one small tokio runtime of its own (one worker thread, created
//!   at the first object URL, shut down without blocking when the last
//!   store is dropped). A call spawns the request on that runtime and waits
//!   on a channel, so it works from any thread that may block (runner
//!   threads, `spawn_blocking` threads, plain threads), never starts or
//!   enters a runtime inside the caller's, and cannot deadlock on the
//!   caller's runtime. Calling it from an async task blocks that task's
//!   thread like any sync I/O would: the server runs sessions on blocking
//!   threads.
//! * **Bounded**: each request has a timeout and a connect timeout; retries
//!   stop after [`ObjectStoreOptions::operation_timeout`], and the caller
//!   stops waiting then too ([`StorageError::Timeout`]).
//! * **Errors** are [`CatalogError::Storage`] naming the dataset, the URL and
//!   the action, with the `object_store` error kept as the source (a
//!   missing object is [`StorageError::NotFound`], a refused request
//!   [`StorageError::Refused`]); bad URLs, unknown schemes and missing
//!   credentials are configuration problems naming the dataset and the URL.
//!
//! ```
//! use serde_json::json;
//! use weft_catalog::{BuildOptions, CatalogConfig};
//! use weft_pipeline::{Data, DataType};
//!
//! let types = weft_object_store::dataset_types();
//! let config = CatalogConfig::parse(
//!     &json!({"scores": {"type": "json.JSONDataset", "filepath": "memory://doc/scores.json"}}),
//!     &json!({}),
//!     &types,
//! )
//! .unwrap();
//! let catalog = config.build(&BuildOptions::default()).unwrap();
//! catalog.save("scores", Data::new(vec![1.5f64, 2.0])).unwrap();
//! let back = catalog.load("scores", Some(&DataType::of::<Vec<f64>>())).unwrap();
//! assert_eq!(back.downcast_ref::<Vec<f64>>().unwrap(), &vec![1.5, 2.0]);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde_json::Value;
use weft_catalog::storage::{BoxError, StorageFactory, StorageRequest, WriteFn};
use weft_catalog::{CatalogError, DatasetTypeRegistry, Storage, StorageError};

/// The URL schemes [`register`] adds.
pub const SCHEMES: &[&str] = &["s3", "gs", "az", "memory"];

/// Limits of every request (the defaults suit a LAN or a cloud region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectStoreOptions {
    /// One HTTP request's limit (default 30 s).
    pub request_timeout: Duration,
    /// Connecting's limit (default 5 s).
    pub connect_timeout: Duration,
    /// Retries of a failed request (default 3).
    pub max_retries: usize,
    /// One whole operation's limit, retries included (default 60 s).
    pub operation_timeout: Duration,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        ObjectStoreOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 3,
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// The built-in dataset types with the object-store schemes registered.
pub fn dataset_types() -> DatasetTypeRegistry {
    let mut types = DatasetTypeRegistry::with_builtins();
    // A fresh registry has no storage scheme, so this cannot collide.
    if let Err(e) = register(&mut types, ObjectStoreOptions::default()) {
        debug_assert!(false, "{e}");
    }
    types
}

/// Registers `s3`, `gs`, `az` and `memory` in `types`, sharing one runtime
/// and one store per (URL root, credentials); an error if one of the
/// schemes is registered already.
pub fn register(types: &mut DatasetTypeRegistry, options: ObjectStoreOptions) -> Result<(), CatalogError> {
    let backend = Arc::new(Backend {
        options,
        bridge: Mutex::new(None),
        stores: Mutex::new(HashMap::new()),
    });
    for scheme in SCHEMES {
        let backend = Arc::clone(&backend);
        let factory: StorageFactory = Arc::new(move |request: &StorageRequest<'_>| {
            backend.storage(request).map(|s| s as Arc<dyn Storage>)
        });
        types.register_storage(scheme, factory)?;
    }
    Ok(())
}

/// Why a URL or its credentials cannot make a store.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL does not parse or has no bucket.
    #[error("malformed URL: {message}")]
    MalformedUrl {
        /// What is wrong.
        message: String,
    },
    /// An `s3`/`gs`/`az` URL without credentials.
    #[error(
        "no credentials: give the catalog entry `credentials: <name>` naming an entry of credentials.yml with {needed} (or `anon: true` for public data); weft reads no environment variables for them"
    )]
    MissingCredentials {
        /// The keys the scheme needs.
        needed: &'static str,
    },
    /// A credentials key this scheme does not know, or a value of the wrong type.
    #[error("credentials: {message}")]
    BadCredentials {
        /// What is wrong.
        message: String,
    },
    /// `object_store` refused the configuration.
    #[error("cannot configure the store")]
    Builder {
        /// The builder's error.
        #[source]
        source: object_store::Error,
    },
    /// The runtime's thread could not start.
    #[error("cannot start the object-store runtime")]
    Runtime {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Owns the runtime the requests run on; shuts it down without blocking
/// (so dropping the last store inside an async context is safe).
struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Bridge {
    fn start() -> Result<Self, SetupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weft-object-store")
            .enable_all()
            .build()
            .map_err(|source| SetupError::Runtime { source })?;
        Ok(Bridge {
            runtime: Some(runtime),
        })
    }

    /// Runs `fut` on the bridge's runtime and waits for it, at most `limit`.
    fn run<T: Send + 'static>(
        &self,
        limit: Duration,
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T, RunError> {
        let Some(rt) = &self.runtime else {
            return Err(RunError::Stopped);
        };
        let (tx, rx) = sync_channel(1);
        let task = rt.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await);
        });
        match rx.recv_timeout(limit + Duration::from_secs(1)) {
            Ok(Ok(result)) => result.map_err(RunError::Store),
            Ok(Err(_)) | Err(RecvTimeoutError::Timeout) => {
                task.abort();
                Err(RunError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(RunError::Stopped),
        }
    }
}

enum RunError {
    Store(object_store::Error),
    Timeout,
    Stopped,
}

struct Backend {
    options: ObjectStoreOptions,
    bridge: Mutex<Option<Arc<Bridge>>>,
    /// (URL root, credentials) → store, so every run reuses one client.
    stores: Mutex<HashMap<String, Arc<ObjectStorage>>>,
}

/// The credentials keys each scheme accepts.
const S3_KEYS: &[&str] = &[
    "key",
    "secret",
    "token",
    "endpoint_url",
    "region",
    "client_kwargs",
    "anon",
];
const GS_KEYS: &[&str] = &["token", "service_account_key", "anon"];
const AZ_KEYS: &[&str] = &["account_name", "account_key", "sas_token", "endpoint_url", "anon"];

struct Creds<'a> {
    map: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Creds<'a> {
    fn new(value: Option<&'a Value>, allowed: &[&str], scheme: &str) -> Result<Self, SetupError> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return Err(SetupError::BadCredentials {
                    message: format!("must be a map, got {other}"),
                });
            }
        };
        for key in map.into_iter().flat_map(|m| m.keys()) {
            if !allowed.contains(&key.as_str()) {
                return Err(SetupError::BadCredentials {
                    message: format!(
                        "unknown key `{key}` for `{scheme}://` (allowed: {})",
                        allowed.join(", ")
                    ),
                });
            }
        }
        Ok(Creds { map })
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, SetupError> {
        self.str_in(self.map, key)
    }

    fn str_in(
        &self,
        map: Option<&'a serde_json::Map<String, Value>>,
        key: &str,
    ) -> Result<Option<&'a str>, SetupError> {
        match map.and_then(|m| m.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(SetupError::BadCredentials {
                message: format!("`{key}` must be a string, got {other}"),
            }),
        }
    }

    fn client_kwarg(&self, key: &str) -> Result<Option<&'a str>, SetupError> {
        match self.map.and_then(|m| m.get("client_kwargs")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(kw)) => self.str_in(Some(kw), key),
            Some(other) => Err(SetupError::BadCredentials {
                message: format!("`client_kwargs` must be a map, got {other}"),
            }),
        }
    }

    fn anon(&self) -> Result<bool, SetupError> {
        match self.map.and_then(|m| m.get("anon")) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(SetupError::BadCredentials {
                message: format!("`anon` must be true or false, got {other}"),
            }),
        }
    }
}

/// Splits `scheme://bucket/key` into the bucket and the key; refuses what
/// the stores would refuse later.
fn split_url(url: &str) -> Result<(String, String), SetupError> {
    let malformed = |message: String| SetupError::MalformedUrl { message };
    let parsed = url::Url::parse(url).map_err(|e| malformed(e.to_string()))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(malformed("a dataset URL has no `?query` or `#fragment`".into()));
    }
    let (_, rest) = url.split_once("://").unwrap_or(("", url));
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(malformed("no bucket (write `scheme://bucket/key`)".into()));
    }
    let key = key.trim_end_matches('/');
    if key.is_empty() {
        return Err(malformed("no object key after the bucket".into()));
    }
    ObjectPath::parse(key).map_err(|e| malformed(e.to_string()))?;
    Ok((bucket.to_string(), key.to_string()))
}

impl Backend {
    fn bridge(&self) -> Result<Arc<Bridge>, SetupError> {
        let mut slot = self.bridge.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = &*slot {
            return Ok(Arc::clone(b));
        }
        let b = Arc::new(Bridge::start()?);
        *slot = Some(Arc::clone(&b));
        Ok(b)
    }

    fn storage(&self, request: &StorageRequest<'_>) -> Result<Arc<ObjectStorage>, BoxError> {
        let (bucket, _) = split_url(request.url)?;
        let root = format!("{}://{bucket}", request.scheme);
        let cache_key = format!(
            "{root}\u{0}{}",
            request.credentials.map(Value::to_string).unwrap_or_default()
        );
        if let Some(s) = self
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key)
        {
            return Ok(Arc::clone(s));
        }
        let store = self.build(request.scheme, &bucket, request.credentials)?;
        let storage = Arc::new(ObjectStorage {
            scheme: request.scheme.to_string(),
            root,
            store,
            bridge: self.bridge()?,
            limit: self.options.operation_timeout,
        });
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(stores.entry(cache_key).or_insert(storage)))
    }

    fn client(&self, endpoint: Option<&str>) -> (ClientOptions, RetryConfig) {
        let client = ClientOptions::new()
            .with_timeout(self.options.request_timeout)
            .with_connect_timeout(self.options.connect_timeout)
            .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")));
        let retry = RetryConfig {
            max_retries: self.options.max_retries,
            retry_timeout: self.options.operation_timeout,
            ..RetryConfig::default()
        };
        (client, retry)
    }

    fn build(
        &self,
        scheme: &str,
        bucket: &str,
        credentials: Option<&Value>,
    ) -> Result<Arc<dyn ObjectStore>, SetupError> {
        let builder_err = |source| SetupError::Builder { source };
        match scheme {
            "memory" => {
                if credentials.is_some() {
                    return Err(SetupError::BadCredentials {
                        message: "`memory://` takes no credentials".into(),
                    });
                }
                Ok(Arc::new(object_store::memory::InMemory::new()))
            }
            "s3" => {
                let c = Creds::new(credentials, S3_KEYS, scheme)?;
                let endpoint = match c.str("endpoint_url")? {
                    Some(e) => Some(e),
                    None => c.client_kwarg("endpoint_url")?,
                };
                let region = match c.str("region")? {
                    Some(r) => Some(r),
                    None => c.client_kwarg("region_name")?,
                };
                let (client, retry) = self.client(endpoint);
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region.unwrap_or("us-east-1"))
                    .with_client_options(client)
                    .with_retry(retry);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if c.anon()? {
                    b = b.with_skip_signature(true);
                } else {
                    match (c.str("key")?, c.str("secret")?) {
                        (Some(key), Some(secret)) => {
                            b = b.with_access_key_id(key).with_secret_access_key(secret);
                            if let Some(token) = c.str("token")? {
                                b = b.with_token(token);
                            }
                        }
                        _ => {
                            return Err(SetupError::MissingCredentials {
                                needed: "`key` and `secret`",
                            });
                        }
                    }
                }
                Ok(Arc::new(b.build().map_err(builder_err)?))
            }
            "gs" => {
                let c = Creds::new(credentials, GS_KEYS, scheme)?;
                let (client, retry) = self.client(None);
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry);
                if c.anon()? {
                    b = b.with_skip_signature(true);
                } else if let Some(path) = c.str("token")? {
                    b = b.with_service_account_path(path);
                } else if let Some(key) = c.str("service_account_key")? {
                    b = b.with_service_account_key(key);
                } else {
                    return Err(SetupError::MissingCredentials {
                        needed: "`token` (a service-account JSON file) or `service_account_key`",
                    });
                }
                Ok(Arc::new(b.build().map_err(builder_err)?))
            }
            "az" => {
                let c = Creds::new(credentials, AZ_KEYS, scheme)?;
                let endpoint = c.str("endpoint_url")?;
                let (client, retry) = self.client(endpoint);
                let Some(account) = c.str("account_name")? else {
                    return Err(SetupError::MissingCredentials {
                        needed: "`account_name` and `account_key` or `sas_token`",
                    });
                };
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry);
                if let Some(e) = endpoint {
                    b = b
                        .with_endpoint(e.to_string())
                        .with_allow_http(e.starts_with("http://"));
                }
                if c.anon()? {
                    b = b.with_skip_signature(true);
                } else if let Some(key) = c.str("account_key")? {
                    b = b.with_access_key(key);
                } else if let Some(sas) = c.str("sas_token")? {
                    b = b.with_config(object_store::azure::AzureConfigKey::SasKey, sas);
                } else {
                    return Err(SetupError::MissingCredentials {
                        needed: "`account_name` and `account_key` or `sas_token`",
                    });
                }
                Ok(Arc::new(b.build().map_err(builder_err)?))
            }
            other => Err(SetupError::MalformedUrl {
                message: format!(
                    "`{other}://` is not an object-store scheme ({})",
                    SCHEMES.join(", ")
                ),
            }),
        }
    }
}

/// One bucket (or container, or memory store) with one set of credentials.
pub struct ObjectStorage {
    scheme: String,
    /// `scheme://bucket`.
    root: String,
    store: Arc<dyn ObjectStore>,
    bridge: Arc<Bridge>,
    limit: Duration,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage").field("root", &self.root).finish()
    }
}

fn classify(e: object_store::Error) -> StorageError {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => StorageError::NotFound { source: Box::new(e) },
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::Precondition { .. }
        | E::AlreadyExists { .. }
        | E::NotModified { .. } => StorageError::Refused { source: Box::new(e) },
        E::InvalidPath { .. } => StorageError::InvalidLocation {
            message: e.to_string(),
        },
        other => StorageError::Failed {
            source: Box::new(other),
        },
    }
}

impl ObjectStorage {
    fn err(&self, dataset: &str, url: &str, action: &'static str, source: StorageError) -> CatalogError {
        CatalogError::Storage {
            dataset: dataset.to_string(),
            url: url.to_string(),
            action,
            source,
        }
    }

    /// The URL and key of a location this storage made.
    fn key(
        &self,
        dataset: &str,
        path: &Path,
        action: &'static str,
    ) -> Result<(String, ObjectPath), CatalogError> {
        let url = path.to_string_lossy().to_string();
        let invalid =
            |message: String| self.err(dataset, &url, action, StorageError::InvalidLocation { message });
        let Some(rest) = url.strip_prefix(&self.root) else {
            return Err(invalid(format!("not under {}", self.root)));
        };
        let rest = rest.trim_start_matches('/').trim_end_matches('/');
        let key = ObjectPath::parse(rest).map_err(|e| invalid(e.to_string()))?;
        Ok((url, key))
    }

    fn run<T: Send + 'static>(
        &self,
        dataset: &str,
        url: &str,
        action: &'static str,
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.bridge.run(self.limit, fut).map_err(|e| {
            let source = match e {
                RunError::Store(e) => classify(e),
                RunError::Timeout => StorageError::Timeout {
                    seconds: self.limit.as_secs(),
                },
                RunError::Stopped => StorageError::Failed {
                    source: "the object-store runtime has stopped".into(),
                },
            };
            self.err(dataset, url, action, source)
        })
    }
}

impl Storage for ObjectStorage {
    fn scheme(&self) -> &str {
        &self.scheme
    }

    fn read(&self, dataset: &str, path: &Path) -> Result<Vec<u8>, CatalogError> {
        let (url, key) = self.key(dataset, path, "read")?;
        let store = Arc::clone(&self.store);
        let bytes = self.run(dataset, &url, "read", async move {
            store.get(&key).await?.bytes().await
        })?;
        Ok(bytes.to_vec())
    }

    fn write(&self, dataset: &str, path: &Path, write: WriteFn<'_>) -> Result<(), CatalogError> {
        let (url, key) = self.key(dataset, path, "write")?;
        let mut buf: Vec<u8> = Vec::new();
        write(&mut buf).map_err(|message| CatalogError::Save {
            dataset: dataset.to_string(),
            path: Some(path.to_path_buf()),
            message,
        })?;
        let store = Arc::clone(&self.store);
        self.run(dataset, &url, "write", async move {
            store.put(&key, PutPayload::from(buf)).await.map(|_| ())
        })
        .map_err(|e| match e {
            // A PUT into a missing bucket is refused, not "missing".
            CatalogError::Storage {
                dataset,
                url,
                action,
                source: StorageError::NotFound { source },
            } => CatalogError::Storage {
                dataset,
                url,
                action,
                source: StorageError::Refused { source },
            },
            other => other,
        })
    }

    fn exists(&self, dataset: &str, path: &Path) -> Result<bool, CatalogError> {
        let (url, key) = self.key(dataset, path, "check")?;
        let store = Arc::clone(&self.store);
        self.run(dataset, &url, "check", async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn list(&self, dataset: &str, dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
        let (url, prefix) = self.key(dataset, dir, "list")?;
        let store = Arc::clone(&self.store);
        let keys = self.run(dataset, &url, "list", async move {
            let mut stream = store.list(Some(&prefix));
            let mut keys = Vec::new();
            while let Some(meta) = stream.next().await {
                let location = meta?.location;
                let hidden = location
                    .prefix_match(&prefix)
                    .is_some_and(|mut rel| rel.any(|part| part.as_ref().starts_with('.')));
                if !hidden {
                    keys.push(location.to_string());
                }
            }
            Ok(keys)
        })?;
        let mut out: Vec<PathBuf> = keys
            .into_iter()
            .map(|k| PathBuf::from(format!("{}/{k}", self.root)))
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, dataset: &str, path: &Path) -> Result<(), CatalogError> {
        let (url, key) = self.key(dataset, path, "delete")?;
        let store = Arc::clone(&self.store);
        self.run(dataset, &url, "delete", async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}
