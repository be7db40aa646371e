//! The reconcile backstop: closes sessions that are stale or whose worker
//! objects are gone, and deletes objects whose session is over or unknown.
//! Sessions are read and closed through a `weft serve`'s HTTP API
//! ([`ServerSessions`]); objects through the Kubernetes API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use serde_json::Value;
use weft_server::SessionState;

use crate::K8sError;
use crate::client::Cluster;
use crate::objects::{MANAGED_SELECTOR, SESSION_ID_ANNOTATION};

/// A session as the server lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// Its state.
    pub state: SessionState,
    /// Its last heartbeat (or creation).
    pub last_heartbeat_at: jiff::Timestamp,
}

/// Where sessions are listed and closed.
pub trait Sessions {
    /// Every session the server knows, live and closed.
    fn list(&self) -> Result<Vec<SessionInfo>, K8sError>;
    /// Closes session `id` (its runs cancelled).
    fn close(&self, id: &str) -> Result<(), K8sError>;
}

/// The sessions of a `weft serve`, over its HTTP API (`GET
/// /v1/sessions?all=true`, `DELETE /v1/sessions/ID?mode=cancel`).
#[derive(Clone, Debug)]
pub struct ServerSessions {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ServerSessions {
    /// The server at `base` (`http://weft-serve:8080`), with its bearer token.
    pub fn new(base: impl Into<String>, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        ServerSessions {
            base: base.into().trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn error(&self, url: &str, e: impl std::fmt::Display) -> K8sError {
        K8sError::Server {
            url: url.to_string(),
            message: e.to_string(),
        }
    }
}

impl Sessions for ServerSessions {
    fn list(&self) -> Result<Vec<SessionInfo>, K8sError> {
        let url = format!("{}/v1/sessions?all=true", self.base);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().map_err(|e| self.error(&url, e))?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.error(&url, e))?;
        let body: Value = serde_json::from_str(&text).map_err(|e| self.error(&url, e))?;
        let Some(list) = body["sessions"].as_array() else {
            return Err(self.error(&url, "the answer has no `sessions` list"));
        };
        let mut out = Vec::new();
        for s in list {
            let (Some(id), Some(state), Some(beat)) = (
                s["id"].as_str(),
                s["state"].as_str(),
                s["last_heartbeat_at"].as_str(),
            ) else {
                return Err(self.error(
                    &url,
                    format!("a session without id, state or last_heartbeat_at: {s}"),
                ));
            };
            out.push(SessionInfo {
                id: id.to_string(),
                state: state
                    .parse()
                    .map_err(|e| self.error(&url, format!("session {id}: {e}")))?,
                last_heartbeat_at: beat.parse().map_err(|e| {
                    self.error(&url, format!("session {id}: last_heartbeat_at {beat:?}: {e}"))
                })?,
            });
        }
        Ok(out)
    }

    fn close(&self, id: &str) -> Result<(), K8sError> {
        let url = format!("{}/v1/sessions/{}?mode=cancel", self.base, percent(id));
        let mut req = self.agent.delete(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        req.call().map_err(|e| self.error(&url, e))?;
        Ok(())
    }
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a reconcile pass may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// A live session silent (no heartbeat) this long is closed.
    pub stale_after: Duration,
    /// A live session whose root ConfigMap is this old with no worker Pod
    /// is closed (younger: its Pod may be being created).
    pub missing_grace: Duration,
    /// Only report what would be done.
    pub dry_run: bool,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            stale_after: Duration::from_secs(24 * 3600),
            missing_grace: Duration::from_secs(120),
            dry_run: false,
        }
    }
}

/// What a reconcile pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sessions closed, with why (`stale`, `worker objects missing`).
    pub closed: Vec<(String, String)>,
    /// Objects deleted, as `Kind/name`.
    pub deleted: Vec<String>,
}

/// Every weft object of the namespace, grouped by session id.
#[derive(Default)]
struct Objects {
    /// Session id → (kind, name) of each object.
    by_session: BTreeMap<String, Vec<(&'static str, String)>>,
    /// Session id → creation time of its root ConfigMap.
    roots: BTreeMap<String, Option<jiff::Timestamp>>,
    /// Sessions with at least one Pod that is not being deleted.
    with_pods: BTreeSet<String>,
}

fn session_of(obj: &impl kube::Resource) -> Option<String> {
    obj.meta()
        .annotations
        .as_ref()?
        .get(SESSION_ID_ANNOTATION)
        .cloned()
}

fn list_objects(cluster: &Cluster) -> Result<Objects, K8sError> {
    cluster.run(|kube| async move {
        let mut o = Objects::default();
        for cm in kube.list::<ConfigMap>(MANAGED_SELECTOR).await? {
            if let Some(id) = session_of(&cm) {
                let created = cm
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| t.0.to_string().parse::<jiff::Timestamp>().ok());
                o.roots.insert(id.clone(), created);
                o.by_session
                    .entry(id)
                    .or_default()
                    .push(("ConfigMap", cm.name_any()));
            }
        }
        for pod in kube.list::<Pod>(MANAGED_SELECTOR).await? {
            if let Some(id) = session_of(&pod) {
                if pod.metadata.deletion_timestamp.is_none() {
                    o.with_pods.insert(id.clone());
                }
                o.by_session.entry(id).or_default().push(("Pod", pod.name_any()));
            }
        }
        for svc in kube.list::<Service>(MANAGED_SELECTOR).await? {
            if let Some(id) = session_of(&svc) {
                o.by_session
                    .entry(id)
                    .or_default()
                    .push(("Service", svc.name_any()));
            }
        }
        for secret in kube.list::<Secret>(MANAGED_SELECTOR).await? {
            if let Some(id) = session_of(&secret) {
                o.by_session
                    .entry(id)
                    .or_default()
                    .push(("Secret", secret.name_any()));
            }
        }
        for np in kube.list::<NetworkPolicy>(MANAGED_SELECTOR).await? {
            if let Some(id) = session_of(&np) {
                o.by_session
                    .entry(id)
                    .or_default()
                    .push(("NetworkPolicy", np.name_any()));
            }
        }
        Ok(o)
    })
}

const DELETE_ORDER: [&str; 5] = ["Pod", "Service", "Secret", "NetworkPolicy", "ConfigMap"];

/// Deletes `objects` in their order.
fn delete_all(cluster: &Cluster, objects: Vec<(&'static str, String)>) -> Result<Vec<String>, K8sError> {
    cluster.run(|kube| async move {
        let mut deleted = Vec::new();
        for (k, name) in &objects {
            let gone = match *k {
                "Pod" => kube.delete::<Pod>(name).await?,
                "Service" => kube.delete::<Service>(name).await?,
                "Secret" => kube.delete::<Secret>(name).await?,
                "NetworkPolicy" => kube.delete::<NetworkPolicy>(name).await?,
                _ => kube.delete::<ConfigMap>(name).await?,
            };
            if gone {
                deleted.push(format!("{k}/{name}"));
            }
        }
        Ok(deleted)
    })
}

/// One pass at time `now`: closes live sessions silent past
/// `stale_after`, and live sessions whose root ConfigMap is older than
/// `missing_grace` with no worker Pod; then deletes every weft object of
/// a session that is closed (now or before) or unknown to the server.
pub fn reconcile(
    cluster: &Cluster,
    sessions: &dyn Sessions,
    options: &ReconcileOptions,
    now: jiff::Timestamp,
) -> Result<ReconcileReport, K8sError> {
    let mut report = ReconcileReport::default();
    let listed = sessions.list()?;
    let objects = list_objects(cluster)?;
    let mut live = BTreeSet::new();
    for s in &listed {
        if s.state.is_terminal() {
            continue;
        }
        let silent = now.duration_since(s.last_heartbeat_at).as_secs_f64();
        let root_age = objects.roots.get(&s.id).map(|created| {
            created
                .map(|c| now.duration_since(c).as_secs_f64())
                .unwrap_or(f64::MAX)
        });
        let why = if silent >= options.stale_after.as_secs_f64() {
            Some(format!("stale: no heartbeat for {}s", silent.floor()))
        } else if let Some(age) = root_age
            && age >= options.missing_grace.as_secs_f64()
            && !objects.with_pods.contains(&s.id)
        {
            Some("worker objects missing: its root ConfigMap has no worker Pod".to_string())
        } else {
            None
        };
        match why {
            Some(why) => {
                if !options.dry_run {
                    sessions.close(&s.id)?;
                }
                tracing::info!(session_id = %s.id, "reconcile closed the session: {why}");
                report.closed.push((s.id.clone(), why));
            }
            None => {
                live.insert(s.id.clone());
            }
        }
    }
    let mut orphans = Vec::new();
    for (id, objs) in objects.by_session {
        if !live.contains(&id) {
            orphans.extend(objs);
        }
    }
    // Workers first, the root (owner of the rest) last.
    orphans.sort_by_key(|(kind, name)| (DELETE_ORDER.iter().position(|k| k == kind), name.clone()));
    if options.dry_run {
        report.deleted = orphans.into_iter().map(|(k, n)| format!("{k}/{n}")).collect();
    } else {
        report.deleted = delete_all(cluster, orphans)?;
    }
    Ok(report)
}
