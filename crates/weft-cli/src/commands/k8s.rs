//! `weft k8s manifests` and `weft k8s reconcile`, and the
//! `--launcher kubernetes` configuration of `weft serve` / `weft multirun`.

use std::sync::Arc;
use std::time::Duration;

use weft_k8s::{ClusterAccess, KubernetesLauncher, KubernetesOptions, PodTemplate};
use weft_server::{ExternalLauncher, LauncherConfig, WorkerLimits};

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
