//! [`KubernetesLauncher`]: each worker of a session is a Pod running
//! `weft worker`, with a Secret holding its token and a Service in front
//! of it; the session's root ConfigMap owns them all, and its
//! NetworkPolicy admits only the master. See [`crate::objects`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use weft_server::{LaunchError, Launcher, WorkerHandle, WorkerProcess, WorkerRequest};

use crate::K8sError;
use crate::client::{Cluster, ClusterAccess, Kube};
use crate::objects::{self, PodTemplate};

/// Everything a [`KubernetesLauncher`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// How the API server is reached.
    pub access: ClusterAccess,
    /// What every worker Pod looks like (namespace, image, resources).
    pub template: PodTemplate,
    /// The shortest time between two reads of a worker's Pod.
    pub poll_interval: Duration,
}

impl KubernetesOptions {
    /// Workers of `template` over `access`, Pods read at most every 200 ms.
    pub fn new(access: ClusterAccess, template: PodTemplate) -> Self {
        KubernetesOptions {
            access,
            template,
            poll_interval: Duration::from_millis(200),
        }
    }
}

struct Shared {
    cluster: Cluster,
    options: KubernetesOptions,
    /// Live workers per session; the session's root objects go with its last one.
    live: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts `weft worker`s as Kubernetes Pods.
#[derive(Clone)]
pub struct KubernetesLauncher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KubernetesLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesLauncher")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl KubernetesLauncher {
    /// Checks `options` and connects (no call is made yet).
    pub fn new(options: KubernetesOptions) -> Result<Self, K8sError> {
        options.template.validate()?;
        let cluster = Cluster::connect(&options.access, &options.template.namespace)?;
        Ok(KubernetesLauncher {
            shared: Arc::new(Shared {
                cluster,
                options,
                live: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> &KubernetesOptions {
        &self.shared.options
    }

    /// Runs `f` with this launcher's client on its runtime (reconcile uses it).
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, K8sError>
    where
        F: FnOnce(Kube) -> Fut,
        Fut: std::future::Future<Output = Result<T, K8sError>> + Send + 'static,
        T: Send + 'static,
    {
        self.shared.run(f)
    }
}

impl Shared {
    fn run<F, Fut, T>(&self, f: F) -> Result<T, K8sError>
    where
        F: FnOnce(Kube) -> Fut,
        Fut: std::future::Future<Output = Result<T, K8sError>> + Send + 'static,
        T: Send + 'static,
    {
        self.cluster.run(f)
    }

    /// The uid of the session's root ConfigMap, created (with the
    /// session's NetworkPolicy) when missing.
    fn ensure_root(&self, session_id: &str) -> Result<String, K8sError> {
        let template = self.options.template.clone();
        let session_id = session_id.to_string();
        self.run(move |kube| async move {
            let name = objects::root_name(&session_id);
            let root = match kube
                .create(&objects::root_config_map(&template, &session_id))
                .await?
            {
                Some(created) => created,
                None => kube.get::<ConfigMap>(&name).await?.ok_or_else(|| K8sError::Api {
                    action: "get",
                    kind: "ConfigMap",
                    name: name.clone(),
                    namespace: template.namespace.clone(),
                    message: "it exists (409 on create) but cannot be read".into(),
                })?,
            };
            let uid = root.metadata.uid.clone().ok_or_else(|| K8sError::Api {
                action: "create",
                kind: "ConfigMap",
                name: name.clone(),
                namespace: template.namespace.clone(),
                message: "the API server gave the object no uid".into(),
            })?;
            let owner = objects::owner_reference(&session_id, &uid);
            kube.create(&objects::network_policy(&template, &session_id, &owner))
                .await?;
            Ok(uid)
        })
    }

    /// Deletes the worker objects of session `session_id` that no worker
    /// of this launcher owns: left by a server that crashed (a session
    /// adopted by this one); nobody holds their tokens any more.
    fn sweep_left_behind(&self, session_id: &str) -> Result<(), K8sError> {
        let selector = format!(
            "{},{}={}",
            objects::MANAGED_SELECTOR,
            objects::SESSION_LABEL,
            objects::session_key(session_id)
        );
        let id = session_id.to_string();
        let mine = move |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(objects::SESSION_ID_ANNOTATION))
                .is_some_and(|v| *v == id)
        };
        self.run(move |kube| async move {
            for pod in kube.list::<Pod>(&selector).await? {
                if mine(&pod.metadata) {
                    let name = pod.metadata.name.unwrap_or_default();
                    tracing::info!(worker = %name, "deleting a worker Pod left by an earlier server");
                    kube.delete::<Pod>(&name).await?;
                }
            }
            for svc in kube.list::<Service>(&selector).await? {
                if mine(&svc.metadata) {
                    kube.delete::<Service>(&svc.metadata.name.unwrap_or_default())
                        .await?;
                }
            }
            for secret in kube.list::<Secret>(&selector).await? {
                if mine(&secret.metadata) {
                    kube.delete::<Secret>(&secret.metadata.name.unwrap_or_default())
                        .await?;
                }
            }
            Ok(())
        })
    }

    /// Deletes a worker's Pod, Service and Secret.
    fn delete_worker(&self, name: &str) -> Result<(), K8sError> {
        let name = name.to_string();
        self.run(move |kube| async move {
            kube.delete::<Pod>(&name).await?;
            kube.delete::<Service>(&name).await?;
            kube.delete::<Secret>(&name).await?;
            Ok(())
        })
    }

    /// Deletes a session's root ConfigMap (its owned objects follow through
    /// the garbage collector) and its NetworkPolicy (for an API server
    /// without one).
    fn delete_root(&self, session_id: &str) -> Result<(), K8sError> {
        let name = objects::root_name(session_id);
        self.run(move |kube| async move {
            kube.delete::<NetworkPolicy>(&name).await?;
            kube.delete::<ConfigMap>(&name).await?;
            Ok(())
        })
    }

    fn launch(self: &Arc<Self>, request: &WorkerRequest) -> Result<PodWorker, K8sError> {
        // Held while the root objects are made, so the last worker of a
        // session ending meanwhile cannot delete them under this one.
        let mut live = lock(&self.live);
        if !live.contains_key(&request.session_id) {
            self.sweep_left_behind(&request.session_id)?;
        }
        let uid = self.ensure_root(&request.session_id)?;
        let name = objects::worker_name(&request.session_id);
        let template = self.options.template.clone();
        let owner = objects::owner_reference(&request.session_id, &uid);
        let secret = objects::token_secret(&template, &name, request, &owner);
        let service = objects::worker_service(&template, &name, request, &owner);
        let pod = objects::worker_pod(&template, &name, request, &owner);
        let created = self.run(move |kube| async move {
            let ns = kube.namespace().to_string();
            let exists = |kind: &'static str, name: &str| K8sError::Api {
                action: "create",
                kind,
                name: name.to_string(),
                namespace: ns.clone(),
                message: "an object of this name exists already".into(),
            };
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            kube.create(&secret)
                .await?
                .ok_or_else(|| exists("Secret", &pod_name))?;
            kube.create(&service)
                .await?
                .ok_or_else(|| exists("Service", &pod_name))?;
            kube.create(&pod).await?.ok_or_else(|| exists("Pod", &pod_name))?;
            Ok(())
        });
        if let Err(e) = created {
            if let Err(cleanup) = self.delete_worker(&name) {
                tracing::warn!(worker = %name, "cleaning up a worker that failed to start: {cleanup}");
            }
            if live.get(&request.session_id).copied().unwrap_or(0) == 0
                && let Err(cleanup) = self.delete_root(&request.session_id)
            {
                tracing::warn!(session_id = %request.session_id, "cleaning up a session's objects: {cleanup}");
            }
            return Err(e);
        }
        *live.entry(request.session_id.clone()).or_insert(0) += 1;
        tracing::info!(worker = %name, namespace = %template.namespace, "worker Pod created");
        Ok(PodWorker {
            shared: Arc::clone(self),
            name,
            session_id: request.session_id.clone(),
            address: None,
            exit: None,
            last_poll: None,
            killed: false,
        })
    }

    fn end_worker(&self, session_id: &str, name: &str) {
        let mut live = lock(&self.live);
        if let Err(e) = self.delete_worker(name) {
            tracing::warn!(worker = %name, "deleting the worker's objects failed: {e}");
        }
        let left = match live.get_mut(session_id) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            live.remove(session_id);
            if let Err(e) = self.delete_root(session_id) {
                tracing::warn!(%session_id, "deleting the session's root objects failed: {e}");
            }
        }
    }
}

impl Launcher for KubernetesLauncher {
    fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError> {
        self.shared
            .launch(request)
            .map(WorkerHandle::new)
            .map_err(|e| LaunchError::Refused(e.to_string()))
    }
}

/// What a read of a worker's Pod says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet (Pending, or Running without an IP).
    Starting,
    /// Running at this IP.
    Running(String),
    /// Ended: why.
    Ended(String),
}

/// The state of Pod `pod` (`None`: it no longer exists).
pub fn pod_state(name: &str, pod: Option<&Pod>) -> PodState {
    let Some(pod) = pod else {
        return PodState::Ended(format!("Pod {name} no longer exists"));
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Ended(format!("Pod {name} is being deleted"));
    }
    let status = pod.status.clone().unwrap_or_default();
    let why = || {
        let mut parts = Vec::new();
        if let Some(r) = &status.reason {
            parts.push(r.clone());
        }
        if let Some(m) = &status.message {
            parts.push(m.clone());
        }
        for cs in status.container_statuses.iter().flatten() {
            if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                parts.push(format!(
                    "container {} exited with code {}{}",
                    cs.name,
                    t.exit_code,
                    t.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                ));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join("; "))
        }
    };
    match status.phase.as_deref() {
        Some("Failed") => PodState::Ended(format!("Pod {name} failed{}", why())),
        Some("Succeeded") => PodState::Ended(format!("Pod {name} succeeded{}", why())),
        _ if status.reason.as_deref() == Some("Evicted") => {
            PodState::Ended(format!("Pod {name} was evicted{}", why()))
        }
        Some("Running") => match status.pod_ip {
            Some(ip) if !ip.is_empty() => PodState::Running(ip),
            _ => PodState::Starting,
        },
        _ => PodState::Starting,
    }
}

/// A worker Pod, seen from its master.
struct PodWorker {
    shared: Arc<Shared>,
    name: String,
    session_id: String,
    address: Option<String>,
    exit: Option<String>,
    last_poll: Option<(Instant, PodState)>,
    killed: bool,
}

impl PodWorker {
    /// The Pod's state, read at most every `poll_interval` (`None`: the API
    /// server could not be read; the next call tries again).
    fn poll(&mut self) -> Option<PodState> {
        if let Some((at, state)) = &self.last_poll
            && at.elapsed() < self.shared.options.poll_interval
        {
            return Some(state.clone());
        }
        let name = self.name.clone();
        let pod = self
            .shared
            .run(move |kube| async move { kube.get::<Pod>(&name).await });
        match pod {
            Ok(pod) => {
                let state = pod_state(&self.name, pod.as_ref());
                if let PodState::Ended(why) = &state {
                    self.exit.get_or_insert_with(|| why.clone());
                }
                self.last_poll = Some((Instant::now(), state.clone()));
                Some(state)
            }
            Err(e) => {
                tracing::debug!(worker = %self.name, "reading the worker's Pod failed: {e}");
                None
            }
        }
    }
}

impl WorkerProcess for PodWorker {
    fn describe(&self) -> String {
        format!("Pod {}", self.name)
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn address(&mut self, deadline: Instant) -> Result<String, LaunchError> {
        if let Some(a) = &self.address {
            return Ok(a.clone());
        }
        let started = Instant::now();
        loop {
            match self.poll() {
                Some(PodState::Running(ip)) => {
                    let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
                    let url = format!("http://{host}:{}", self.shared.options.template.port);
                    self.address = Some(url.clone());
                    return Ok(url);
                }
                Some(PodState::Ended(why)) => {
                    return Err(LaunchError::Exited {
                        worker: self.describe(),
                        status: why,
                        stderr: String::new(),
                    });
                }
                Some(PodState::Starting) | None => {}
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Silent {
                    worker: self.describe(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(self.shared.options.poll_interval);
            std::thread::sleep(wait);
        }
    }

    fn exited(&mut self) -> Option<String> {
        if self.exit.is_none() && !self.killed {
            self.poll();
        }
        self.exit.clone()
    }

    fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        self.shared.end_worker(&self.session_id, &self.name);
        self.exit
            .get_or_insert_with(|| format!("Pod {} deleted", self.name));
    }

    fn stop_idle_by_kill(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(phase: &str, ip: Option<&str>, reason: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: ip.map(String::from),
                reason: reason.map(String::from),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn pod_phases_map_to_worker_states() {
        assert_eq!(
            pod_state("p", Some(&pod("Pending", None, None))),
            PodState::Starting
        );
        assert_eq!(
            pod_state("p", Some(&pod("Running", None, None))),
            PodState::Starting
        );
        assert_eq!(
            pod_state("p", Some(&pod("Running", Some("10.0.0.7"), None))),
            PodState::Running("10.0.0.7".into())
        );
        assert_eq!(
            pod_state("p", Some(&pod("Failed", Some("10.0.0.7"), Some("Evicted")))),
            PodState::Ended("Pod p failed: Evicted".into())
        );
        assert_eq!(
            pod_state("p", Some(&pod("Running", Some("10.0.0.7"), Some("Evicted")))),
            PodState::Ended("Pod p was evicted: Evicted".into())
        );
        assert_eq!(
            pod_state("p", None),
            PodState::Ended("Pod p no longer exists".into())
        );
    }
}
