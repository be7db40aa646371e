//! The one error type of this crate.

/// What went wrong talking to Kubernetes or building its objects.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The Kubernetes client could not be configured (no kubeconfig, no
    /// in-cluster service account, a bad URL).
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    /// A call to the API server failed.
    #[error("Kubernetes API: {action} {kind} `{name}` in namespace `{namespace}`: {message}")]
    Api {
        /// What was asked (`create`, `get`, `delete`, `list`).
        action: &'static str,
        /// The object's kind (`Pod`).
        kind: &'static str,
        /// The object's name (or the label selector of a list).
        name: String,
        /// The namespace.
        namespace: String,
        /// The API server's (or the transport's) message.
        message: String,
    },
    /// An option has a value Kubernetes would refuse.
    #[error("{field} {value:?}: {expected}")]
    Invalid {
        /// Which option (`--k8s-cpu`).
        field: &'static str,
        /// Its value.
        value: String,
        /// What is expected instead.
        expected: &'static str,
    },
    /// The weft server could not be reached or refused a call (reconcile).
    #[error("weft server {url}: {message}")]
    Server {
        /// The URL called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The internal runtime of the client stopped.
    #[error("the Kubernetes client's runtime stopped")]
    Runtime,
    /// Objects could not be written as YAML.
    #[error("cannot write manifests as YAML: {0}")]
    Yaml(String),
}
