//! The Kubernetes launcher of `weft serve` (`--launcher kubernetes`).
//!
//! Per session, [`KubernetesLauncher`] creates a root ConfigMap that owns
//! everything else, a NetworkPolicy admitting only the master's pods, and
//! per worker a Secret (its token), a Pod running `weft worker` and a
//! Service; see [`objects`]. A worker Pod that fails or is evicted is seen
//! as an exited worker, and the master replaces it. [`manifests`] prints the
//! static objects (`weft k8s manifests`), [`reconcile`] is the backstop
//! (`weft k8s reconcile`).
//!
//! Tested against a fake API server only: no cluster runs where weft is built.

mod client;
mod error;
mod launcher;
pub mod manifests;
pub mod objects;
pub mod reconcile;

pub use client::{Cluster, ClusterAccess, Kube};
pub use error::K8sError;
pub use launcher::{KubernetesLauncher, KubernetesOptions, PodState, pod_state};
pub use manifests::{ManifestOptions, manifests_yaml};
pub use objects::PodTemplate;
pub use reconcile::{ReconcileOptions, ReconcileReport, ServerSessions, SessionInfo, Sessions, reconcile};
