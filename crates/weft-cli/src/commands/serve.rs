//! `weft serve`: resolves the server's settings here, at the edge (flags,
//! then `WEFT_TOKEN` / `WEFT_STORE_URL`, then `weft.toml`, then defaults),
//! and hands them to `weft_server`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use weft_server::{
    DEFAULT_PORT, LauncherConfig, Server, ServerConfig, SlurmCommands, SlurmOptions, SystemClock,
    WorkerLimits,
};
use weft_session::{Project, ProjectCode, SessionOptions, StoreChoice};
use weft_store::Store;

use super::Edge;
use crate::Io;
use crate::args::{LauncherArg, LauncherArgs, ServeArgs, SessionArgs, SlurmArgs};
use crate::error::UsageError;

pub(crate) fn serve(
    edge: &Edge<'_>,
    args: &ServeArgs,
    token: Option<String>,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let project = Project::open(&edge.project)?;
    let session_args = SessionArgs {
        env: args.env.clone(),
        store: args.store.clone(),
        ..SessionArgs::default()
    };
    let settings = crate::settings::resolve(&session_args, None, edge.environment, &project)?;
    if token.as_deref() == Some("") {
        return Err(UsageError::new("the bearer token is empty (--token-file or WEFT_TOKEN)").into());
    }
    let listen = args
        .listen
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)));
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(UsageError::new(format!(
            "--listen {listen} is not a loopback address: serving beyond this machine needs a token (--token-file or WEFT_TOKEN)"
        ))
        .into());
    }
    if args.max_workers == Some(0) {
        return Err(UsageError::new("--max-workers must be at least 1").into());
    }
    let launcher = launcher_config(&args.launcher)?;
    let reconciler = match args.k8s_reconcile_every_s {
        Some(_) if args.launcher.launcher != LauncherArg::Kubernetes => {
            return Err(UsageError::new("--k8s-reconcile-every-s needs --launcher kubernetes").into());
        }
        Some(every) => Some(super::k8s::Reconciler::connect(
            &args.launcher.k8s,
            Duration::from_secs(every),
        )?),
        None => None,
    };
    let provenance = crate::settings::provenance(edge.environment, Some(project.root()), &edge.command);
    let mut config = ServerConfig::new(project.root());
    config.session_options = SessionOptions {
        env: Some(settings.env.clone()),
        code,
        provenance,
        environment: Arc::clone(&settings.variables),
        node_host_program: super::node_host_program(),
        ..SessionOptions::default()
    };
    config.token = token;
    if let Some(n) = args.max_workers {
        config.max_workers = n;
    }
    config.idle_ttl = Duration::from_secs(args.idle_ttl_s);
    config.lease = Duration::from_secs(args.lease_s.max(1));
    config.reconcile_every = Duration::from_secs_f64((args.lease_s.max(1) as f64 / 3.0).clamp(0.2, 1.0));
    config.grace = Duration::from_secs(args.grace_s);
    config.logs_dir = Some(weft_session::run_logs::logs_dir(&edge.project));
    config.launcher = launcher;
    let signals = io.signals;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = match &settings.store {
            StoreChoice::Url(url) => Store::open(url).await?,
            StoreChoice::ProjectDefault | StoreChoice::Disabled => {
                Store::open_project_default(project.root()).await?
            }
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| UsageError::caused_by(format!("--listen {listen}: cannot bind"), e))?;
        let bound = listener.local_addr()?;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(
                weft_server::tls::acceptor(cert, key)
                    .map_err(|e| UsageError::caused_by("--tls-cert/--tls-key", e))?,
            ),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(
            io.out,
            "weft serve: listening on {scheme}://{bound} (store: {})",
            store.target()
        )?;
        io.out.flush()?;
        let server = Server::new(config, store, Arc::new(SystemClock));
        let reconciler = reconciler.map(|r| r.start(Arc::clone(&server)));
        let stop = async move {
            if signals {
                wait_for_signal().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        match tls {
            Some(acceptor) => {
                weft_server::serve(
                    server,
                    weft_server::tls::TlsListener::new(listener, acceptor),
                    stop,
                )
                .await?
            }
            None => weft_server::serve(server, listener, stop).await?,
        }
        if let Some(r) = reconciler {
            r.stop().await;
        }
        writeln!(io.out, "weft serve: stopped")?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(crate::error::EXIT_OK)
}

/// `--launcher` and its `--worker-*` / `--ray-*` / `--slurm-*` flags.
pub(super) fn launcher_config(args: &LauncherArgs) -> anyhow::Result<LauncherConfig> {
    let worker_flags = args.worker_max_runs.is_some()
        || args.worker_program.is_some()
        || args.worker_memory_limit.is_some()
        || args.worker_cpu_limit_s.is_some();
    let ray = &args.ray;
    let ray_flags = ray.ray_address.is_some()
        || ray.ray_num_cpus.is_some()
        || ray.ray_memory.is_some()
        || ray.ray_listen_host.is_some()
        || ray.ray_working_dir.is_some();
    if ray_flags && args.launcher != LauncherArg::Ray {
        return Err(UsageError::new("the --ray-* flags need --launcher ray").into());
    }
    let slurm = &args.slurm;
    let slurm_flags = slurm.slurm_partition.is_some()
        || slurm.slurm_account.is_some()
        || slurm.slurm_time.is_some()
        || slurm.slurm_cpus.is_some()
        || slurm.slurm_memory.is_some()
        || !slurm.slurm_sbatch_arg.is_empty()
        || slurm.slurm_bin_dir.is_some()
        || slurm.slurm_output_dir.is_some()
        || slurm.slurm_listen_host.is_some()
        || slurm.slurm_rest_url.is_some();
    if slurm_flags && args.launcher != LauncherArg::Slurm {
        return Err(UsageError::new("the --slurm-* flags need --launcher slurm").into());
    }
    let k8s = &args.k8s;
    let k8s_flags = k8s.k8s_api_url.is_some()
        || k8s.k8s_namespace.is_some()
        || k8s.k8s_image.is_some()
        || k8s.k8s_cpu.is_some()
        || k8s.k8s_memory.is_some()
        || k8s.k8s_service_account.is_some()
        || k8s.k8s_port.is_some()
        || k8s.k8s_image_pull_policy.is_some();
    if k8s_flags && args.launcher != LauncherArg::Kubernetes {
        return Err(UsageError::new("the --k8s-* flags need --launcher kubernetes").into());
    }
    if args.launcher == LauncherArg::InProcess {
        if worker_flags {
            return Err(UsageError::new(
                "the --worker-* flags need --launcher process or ray or slurm or kubernetes",
            )
            .into());
        }
        return Ok(LauncherConfig::InProcess);
    }
    if args.worker_max_runs == Some(0) {
        return Err(UsageError::new("--worker-max-runs must be at least 1").into());
    }
    let timeout = args.worker_ready_timeout_s;
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
        return Err(UsageError::new(format!(
            "--worker-ready-timeout-s {timeout}: expected seconds between 0 and 86400"
        ))
        .into());
    }
    let program = match &args.worker_program {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| UsageError::caused_by("--launcher: cannot find this executable", e))?,
    };
    let ready_timeout = Duration::from_secs_f64(timeout);
    let limits = WorkerLimits {
        memory_bytes: args.worker_memory_limit,
        cpu_seconds: args.worker_cpu_limit_s,
    };
    if args.launcher == LauncherArg::Process {
        return Ok(LauncherConfig::Process {
            program,
            max_runs: args.worker_max_runs,
            ready_timeout,
            limits,
        });
    }
    if args.launcher == LauncherArg::Kubernetes {
        return super::k8s::launcher_config(
            &args.k8s,
            args.worker_program.as_deref(),
            args.worker_max_runs,
            ready_timeout,
            limits,
        );
    }
    if args.launcher == LauncherArg::Slurm {
        return slurm_config(slurm, program, args.worker_max_runs, ready_timeout, limits);
    }
    let Some(address) = ray.ray_address.clone() else {
        return Err(UsageError::new(
            "--launcher ray needs --ray-address URL (the Ray dashboard, e.g. http://127.0.0.1:8265)",
        )
        .into());
    };
    if !address.starts_with("http://") {
        return Err(UsageError::new(format!(
            "--ray-address {address}: expected an http:// URL of the Ray dashboard"
        ))
        .into());
    }
    if let Some(cpus) = ray.ray_num_cpus
        && !(cpus.is_finite() && cpus >= 0.0)
    {
        return Err(UsageError::new(format!(
            "--ray-num-cpus {cpus}: expected a number of CPUs, 0 or more"
        ))
        .into());
    }
    Ok(LauncherConfig::Ray {
        address,
        program,
        max_runs: args.worker_max_runs,
        ready_timeout,
        num_cpus: ray.ray_num_cpus,
        memory: ray.ray_memory,
        listen_host: ray.ray_listen_host,
        working_dir: ray.ray_working_dir.clone(),
        limits,
    })
}

/// `--launcher slurm` and its `--slurm-*` flags.
fn slurm_config(
    args: &SlurmArgs,
    program: std::path::PathBuf,
    max_runs: Option<u32>,
    ready_timeout: Duration,
    limits: WorkerLimits,
) -> anyhow::Result<LauncherConfig> {
    for (flag, value) in [
        ("--slurm-partition", &args.slurm_partition),
        ("--slurm-account", &args.slurm_account),
        ("--slurm-time", &args.slurm_time),
    ] {
        if let Some(v) = value
            && (v.trim().is_empty() || v.contains(char::is_whitespace))
        {
            return Err(UsageError::new(format!("{flag} {v:?}: expected one word")).into());
        }
    }
    let mut options = SlurmOptions::new(program);
    if let Some(dir) = &args.slurm_bin_dir {
        options.commands = SlurmCommands::in_dir(dir);
    }
    options.partition = args.slurm_partition.clone();
    options.account = args.slurm_account.clone();
    options.time_limit = args.slurm_time.clone();
    options.cpus = args.slurm_cpus;
    options.memory = args.slurm_memory;
    options.extra_args = args.slurm_sbatch_arg.clone();
    options.output_dir = args.slurm_output_dir.clone();
    if let Some(host) = args.slurm_listen_host {
        options.listen_host = host;
    }
    if let Some(url) = &args.slurm_rest_url {
        options.rest = Some(Box::new(slurm_rest(args, url)?));
    }
    Ok(LauncherConfig::Slurm {
        options,
        max_runs,
        ready_timeout,
        limits,
    })
}

/// `--slurm-rest-url` and its user and token (read here, at the edge).
fn slurm_rest(args: &SlurmArgs, url: &str) -> anyhow::Result<weft_server::SlurmRest> {
    if !url.starts_with("http://") || url.len() <= "http://".len() {
        return Err(UsageError::new(format!("--slurm-rest-url {url:?}: expected http://HOST:PORT")).into());
    }
    if !args.slurm_sbatch_arg.is_empty() {
        return Err(UsageError::new("--slurm-sbatch-arg cannot be used with --slurm-rest-url").into());
    }
    let user = match &args.slurm_rest_user {
        Some(u) => u.clone(),
        None => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| UsageError::new("--slurm-rest-url needs --slurm-rest-user (USER is not set)"))?,
    };
    let token = match &args.slurm_rest_token_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| UsageError::new(format!("--slurm-rest-token-file {}: {e}", file.display())))?;
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            let token = line.strip_prefix("SLURM_JWT=").unwrap_or(line).to_string();
            if token.is_empty() {
                return Err(UsageError::new(format!(
                    "--slurm-rest-token-file {}: the file holds no token",
                    file.display()
                ))
                .into());
            }
            token
        }
        None => std::env::var("SLURM_JWT")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UsageError::new("--slurm-rest-url needs a token: --slurm-rest-token-file FILE or SLURM_JWT")
            })?,
    };
    Ok(weft_server::SlurmRest {
        url: url.to_string(),
        user,
        token,
    })
}

/// SIGINT or SIGTERM.
pub(super) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
