//! The Kubernetes client and the runtime it runs on: the launcher's trait
//! is synchronous, kube is asynchronous, so the client lives on a small
//! runtime of its own and every call waits for its answer.

use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::K8sError;

/// A runtime of one thread that runs the client's futures.
pub(crate) struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    pub(crate) fn new() -> Result<Self, K8sError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weft-k8s")
            .enable_all()
            .build()
            .map_err(|e| K8sError::Config(format!("cannot start the client's runtime: {e}")))?;
        Ok(Runtime { rt: Some(rt) })
    }

    /// Runs `fut` on this runtime and waits for its output (callable from
    /// any thread, inside another runtime too).
    pub(crate) fn run<F>(&self, fut: F) -> Result<F::Output, K8sError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.rt.as_ref().ok_or(K8sError::Runtime)?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Joined through the channel: the task ends by sending its output.
        let _task = rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| K8sError::Runtime)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Allowed inside an async context, unlike dropping the runtime.
            rt.shutdown_background();
        }
    }
}

/// A namespaced client with the calls the launcher and reconcile make.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn api_error(
    action: &'static str,
    kind: &'static str,
    name: &str,
    namespace: &str,
    e: kube::Error,
) -> K8sError {
    K8sError::Api {
        action,
        kind,
        name: name.to_string(),
        namespace: namespace.to_string(),
        message: e.to_string(),
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}

/// The kind name of a resource type, for messages.
fn kind_of<K: kube::Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Pod" => "Pod",
        "Service" => "Service",
        "Secret" => "Secret",
        "ConfigMap" => "ConfigMap",
        "NetworkPolicy" => "NetworkPolicy",
        _ => "object",
    }
}

impl Kube {
    /// A client of `namespace` over `client`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Kube {
            client,
            namespace: namespace.into(),
        }
    }

    /// The namespace every call is made in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates `obj`; `Ok(None)` when one of its name exists already.
    pub async fn create<K>(&self, obj: &K) -> Result<Option<K>, K8sError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        match self.api::<K>().create(&PostParams::default(), obj).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if is_code(&e, 409) => Ok(None),
            Err(e) => Err(api_error("create", kind_of::<K>(), &name, &self.namespace, e)),
        }
    }

    /// Reads object `name`; `Ok(None)` when there is none.
    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, K8sError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .get_opt(name)
            .await
            .map_err(|e| api_error("get", kind_of::<K>(), name, &self.namespace, e))
    }

    /// Deletes object `name`; `Ok(false)` when there was none.
    pub async fn delete<K>(&self, name: &str) -> Result<bool, K8sError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        match self.api::<K>().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, 404) => Ok(false),
            Err(e) => Err(api_error("delete", kind_of::<K>(), name, &self.namespace, e)),
        }
    }

    /// Lists the objects matching label `selector`.
    pub async fn list<K>(&self, selector: &str) -> Result<Vec<K>, K8sError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| api_error("list", kind_of::<K>(), selector, &self.namespace, e))
    }
}

/// How the client reaches the API server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClusterAccess {
    /// kube's inference: the in-cluster service account when it runs in a
    /// Pod, else the kubeconfig (`KUBECONFIG`, `~/.kube/config`).
    #[default]
    Infer,
    /// This URL, without credentials (`kubectl proxy`, a test's fake API
    /// server).
    Url(String),
}

/// A Kubernetes client with the runtime it runs on: usable from
/// synchronous code, inside another runtime too.
pub struct Cluster {
    // Declared before the runtime: its tasks run there.
    kube: Kube,
    rt: Runtime,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("kube", &self.kube)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to the API server through `access`, calls in `namespace`
    /// (no call is made yet).
    pub fn connect(access: &ClusterAccess, namespace: &str) -> Result<Self, K8sError> {
        // kube's TLS needs a process-wide rustls provider; with both ring
        // and aws-lc-rs in the build none is chosen by itself. An already
        // installed one is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = Runtime::new()?;
        let kube = connect(&rt, access, namespace)?;
        Ok(Cluster { kube, rt })
    }

    /// The namespace every call is made in.
    pub fn namespace(&self) -> &str {
        self.kube.namespace()
    }

    /// Runs `f` with the client and waits for its result.
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, K8sError>
    where
        F: FnOnce(Kube) -> Fut,
        Fut: Future<Output = Result<T, K8sError>> + Send + 'static,
        T: Send + 'static,
    {
        self.rt.run(f(self.kube.clone()))?
    }
}

/// Builds the client on `rt` (its background tasks run there).
fn connect(rt: &Runtime, access: &ClusterAccess, namespace: &str) -> Result<Kube, K8sError> {
    let access = access.clone();
    let namespace = namespace.to_string();
    rt.run(async move {
        let config = match access {
            ClusterAccess::Infer => kube::Config::infer()
                .await
                .map_err(|e| K8sError::Config(e.to_string()))?,
            ClusterAccess::Url(url) => {
                let uri: http::Uri = url.parse().map_err(|e| K8sError::Invalid {
                    field: "--k8s-api-url",
                    value: format!("{url} ({e})"),
                    expected: "the API server's URL (http://HOST:PORT or https://HOST:PORT)",
                })?;
                kube::Config::new(uri)
            }
        };
        let client = kube::Client::try_from(config).map_err(|e| K8sError::Config(e.to_string()))?;
        Ok(Kube::new(client, namespace))
    })?
}
