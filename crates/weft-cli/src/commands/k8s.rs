//! `weft k8s manifests` and `weft k8s reconcile`, and the
//! `--launcher kubernetes` configuration of `weft serve` / `weft multirun`.

use std::sync::Arc;
use std::time::Duration;

use weft_k8s::{Cluster, K8sError, ReconcileOptions, SessionInfo, Sessions};
use weft_k8s::{ClusterAccess, KubernetesLauncher, KubernetesOptions, PodTemplate};
use weft_server::{ExternalLauncher, LauncherConfig, Server, SessionState, WorkerLimits};
use weft_session::CloseMode;

use crate::Io;
use crate::args::{K8sArgs, K8sCommand};
use crate::error::UsageError;

/// `--launcher kubernetes` and its `--k8s-*` flags.
pub(super) fn launcher_config(
    args: &K8sArgs,
    program: Option<&std::path::Path>,
    max_runs: Option<u32>,
    ready_timeout: Duration,
    limits: WorkerLimits,
) -> anyhow::Result<LauncherConfig> {
    let Some(image) = args.k8s_image.clone() else {
        return Err(UsageError::new(
            "--launcher kubernetes needs --k8s-image IMAGE (the worker Pods' image)",
        )
        .into());
    };
    let mut template = PodTemplate::new(args.k8s_namespace.as_deref().unwrap_or("default"), image);
    if let Some(p) = program {
        template.program = p.display().to_string();
    }
    template.cpu = args.k8s_cpu.clone();
    template.memory = args.k8s_memory.clone();
    template.service_account = args.k8s_service_account.clone();
    template.image_pull_policy = args.k8s_image_pull_policy.clone();
    if let Some(port) = args.k8s_port {
        template.port = port;
    }
    template.validate().map_err(|e| UsageError::new(e.to_string()))?;
    let launcher = KubernetesLauncher::new(KubernetesOptions::new(
        access(args.k8s_api_url.as_deref())?,
        template,
    ))?;
    Ok(LauncherConfig::External(ExternalLauncher {
        launcher: Arc::new(launcher),
        name: "kubernetes",
        max_runs,
        ready_timeout,
        limits,
    }))
}

/// The reconcile pass inside `weft serve` (`--k8s-reconcile-every-s`),
/// before it starts.
pub(super) struct Reconciler {
    cluster: Cluster,
    every: Duration,
}

/// The reconcile task of a running `weft serve`.
pub(super) struct RunningReconciler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// A server's own sessions, read from its store and closed through it
/// (called on a blocking thread of the server's runtime).
struct LocalSessions {
    server: Arc<Server>,
    handle: tokio::runtime::Handle,
}

impl Sessions for LocalSessions {
    fn list(&self) -> Result<Vec<SessionInfo>, K8sError> {
        let records = self
            .handle
            .block_on(self.server.store().list_server_sessions(false))
            .map_err(|e| K8sError::Server {
                url: "this server's store".into(),
                message: e.to_string(),
            })?;
        Ok(records
            .into_iter()
            .map(|r| SessionInfo {
                state: r.state.parse().unwrap_or(SessionState::Closed),
                id: r.session_id,
                last_heartbeat_at: r.heartbeat_at,
            })
            .collect())
    }

    fn close(&self, id: &str) -> Result<(), K8sError> {
        self.handle
            .block_on(self.server.terminate(id, CloseMode::Cancel))
            .map(|_| ())
            .map_err(|e| K8sError::Server {
                url: format!("this server's session {id}"),
                message: e.to_string(),
            })
    }
}

impl Reconciler {
    /// Connects to the API server of `args` (no call is made yet).
    pub(super) fn connect(args: &K8sArgs, every: Duration) -> anyhow::Result<Self> {
        let namespace = args.k8s_namespace.as_deref().unwrap_or("default");
        let cluster = Cluster::connect(&access(args.k8s_api_url.as_deref())?, namespace)?;
        Ok(Reconciler { cluster, every })
    }

    /// Starts the pass every `every` on `server`'s sessions (inside its runtime).
    pub(super) fn start(self, server: Arc<Server>) -> RunningReconciler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let Reconciler { cluster, every } = self;
        let cluster = Arc::new(cluster);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let (server, cluster) = (Arc::clone(&server), Arc::clone(&cluster));
                let handle = tokio::runtime::Handle::current();
                let pass = tokio::task::spawn_blocking(move || {
                    let sessions = LocalSessions { server, handle };
                    weft_k8s::reconcile(
                        &cluster,
                        &sessions,
                        &ReconcileOptions::default(),
                        jiff::Timestamp::now(),
                    )
                })
                .await;
                match pass {
                    Ok(Ok(report)) => {
                        for (id, why) in &report.closed {
                            tracing::info!(session_id = %id, "reconcile closed the session: {why}");
                        }
                        if !report.deleted.is_empty() {
                            tracing::info!(deleted = ?report.deleted, "reconcile deleted orphaned objects");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!("reconcile failed: {e}"),
                    Err(e) => tracing::error!("reconcile pass panicked: {e}"),
                }
            }
        });
        RunningReconciler { stop, task }
    }
}

impl RunningReconciler {
    /// Stops the task and waits for it (a pass under way finishes first).
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!("the reconcile task failed: {e}");
        }
    }
}

fn access(url: Option<&str>) -> anyhow::Result<ClusterAccess> {
    match url {
        None => Ok(ClusterAccess::Infer),
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            Ok(ClusterAccess::Url(u.to_string()))
        }
        Some(u) => {
            Err(UsageError::new(format!("--k8s-api-url {u}: expected an http:// or https:// URL")).into())
        }
    }
}

/// `90s`, `30m`, `24h`, `2d` (or bare seconds).
fn parse_duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        UsageError::new(format!(
            "{flag} {s:?}: expected a duration like 90s, 30m, 24h or 2d"
        ))
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(UsageError::new(format!(
                "{flag} {s:?}: expected a duration like 90s, 30m, 24h or 2d"
            ))
            .into());
        }
    };
    Ok(Duration::from_secs(secs))
}

/// `weft k8s ...`; `server` and `token` are the global `--server` and token.
pub(super) fn k8s(
    cmd: K8sCommand,
    server: Option<String>,
    token: Option<String>,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    match cmd {
        K8sCommand::Manifests {
            namespace,
            image,
            image_project,
            schedule,
        } => {
            let mut options = weft_k8s::ManifestOptions::new(namespace.clone(), image.clone());
            options.project = image_project;
            options.schedule = schedule;
            PodTemplate::new(namespace, image)
                .validate()
                .map_err(|e| UsageError::new(e.to_string().replace("--k8s-", "--")))?;
            io.out.write_all(weft_k8s::manifests_yaml(&options)?.as_bytes())?;
            Ok(crate::error::EXIT_OK)
        }
        K8sCommand::Reconcile {
            stale_after,
            missing_grace,
            dry_run,
            k8s_api_url,
            k8s_namespace,
            json,
        } => {
            let Some(server) = server else {
                return Err(UsageError::new(
                    "weft k8s reconcile needs --server URL (or WEFT_SERVER): the weft serve whose sessions it checks",
                )
                .into());
            };
            let options = weft_k8s::ReconcileOptions {
                stale_after: parse_duration("--stale-after", &stale_after)?,
                missing_grace: parse_duration("--missing-grace", &missing_grace)?,
                dry_run,
            };
            let cluster = weft_k8s::Cluster::connect(&access(k8s_api_url.as_deref())?, &k8s_namespace)?;
            let sessions = weft_k8s::ServerSessions::new(server, token);
            let report = weft_k8s::reconcile(&cluster, &sessions, &options, jiff::Timestamp::now())?;
            if json {
                let closed: Vec<_> = report
                    .closed
                    .iter()
                    .map(|(id, why)| serde_json::json!({"session_id": id, "reason": why}))
                    .collect();
                super::write_json(
                    io.out,
                    &serde_json::json!({"dry_run": dry_run, "closed": closed, "deleted": report.deleted}),
                )?;
            } else {
                let verb = if dry_run { "would close" } else { "closed" };
                for (id, why) in &report.closed {
                    writeln!(io.out, "{verb} session {id}: {why}")?;
                }
                let verb = if dry_run { "would delete" } else { "deleted" };
                for obj in &report.deleted {
                    writeln!(io.out, "{verb} {obj}")?;
                }
                writeln!(
                    io.out,
                    "reconcile: {} session(s) closed, {} object(s) deleted{}",
                    report.closed.len(),
                    report.deleted.len(),
                    if dry_run { " (dry run)" } else { "" }
                )?;
            }
            Ok(crate::error::EXIT_OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("--x", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("--x", "24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("--x", "2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("--x", "15").unwrap(), Duration::from_secs(15));
        let err = parse_duration("--stale-after", "1w").unwrap_err().to_string();
        assert!(err.contains("--stale-after") && err.contains("1w"), "{err}");
        assert!(parse_duration("--x", "h").is_err());
    }
}
