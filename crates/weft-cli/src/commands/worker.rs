//! `weft worker`: one process serving ONE session's runs to a `weft serve`
//! master ([`weft_server::worker_app`]). It listens first (the first stdout
//! line says where), then loads the project; `/healthz` says ready once it
//! is loaded. It exits after `--max-runs` answered runs, on `POST /stop`,
//! on SIGINT/SIGTERM, and (with `--stop-on-stdin-eof`) when its launcher
//! goes away.

use std::io::Read;
use std::sync::Arc;

use weft_server::{WorkerLimits, WorkerState, serve_worker};
use weft_session::{CloseMode, Project, ProjectCode, SessionOptions};

use super::Edge;
use crate::Io;
use crate::args::{SessionArgs, WorkerArgs};
use crate::error::UsageError;

pub(crate) fn worker(
    edge: &Edge<'_>,
    args: &WorkerArgs,
    token: Option<String>,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    if token.as_deref() == Some("") {
        return Err(UsageError::new("the bearer token is empty (--token-file or WEFT_TOKEN)").into());
    }
    if token.is_none() && !args.listen.ip().is_loopback() {
        return Err(UsageError::new(format!(
            "--listen {}: a worker beyond this machine needs a token (--token-file or WEFT_TOKEN)",
            args.listen
        ))
        .into());
    }
    if args.max_runs == Some(0) {
        return Err(UsageError::new("--max-runs must be at least 1").into());
    }
    if args.session_id.is_empty() {
        return Err(UsageError::new("--session-id must not be empty").into());
    }
    let project = Project::open(&edge.project)?;
    let session_args = SessionArgs {
        env: args.env.clone(),
        ..SessionArgs::default()
    };
    let settings = crate::settings::resolve(&session_args, None, edge.environment, &project)?;
    let provenance = crate::settings::provenance(edge.environment, Some(project.root()), &edge.command);
    let options = SessionOptions {
        env: Some(settings.env.clone()),
        code,
        provenance,
        environment: Arc::clone(&settings.variables),
        node_host_program: super::node_host_program(),
        ..SessionOptions::default()
    };
    let limits = WorkerLimits {
        memory_bytes: args.memory_limit,
        cpu_seconds: args.cpu_limit_s,
    };
    // Before the project loads: its memory counts too.
    limits.apply_memory()?;
    let state = WorkerState::limited(args.session_id.clone(), token, args.max_runs, limits);
    // Progress lines of streamed answers: the master's events stream and
    // store see this process's runs node by node.
    let mut options = options;
    options.hooks.push(state.progress_hook());
    let root = project.root().to_path_buf();
    let session_id = args.session_id.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let signals = io.signals;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| UsageError::caused_by(format!("--listen {}: cannot bind", args.listen), e))?;
        let bound = listener.local_addr()?;
        writeln!(io.out, "weft worker: listening on http://{bound}")?;
        io.out.flush()?;
        if args.stop_on_stdin_eof {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                // The launcher is gone: nobody would record what runs here.
                state.stop(CloseMode::Cancel);
            });
        }
        if signals {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                super::serve::wait_for_signal().await;
                state.stop(CloseMode::Cancel);
            });
        }
        let loading = {
            let state = Arc::clone(&state);
            tokio::task::spawn_blocking(move || {
                // The master records runs; the worker only returns their records.
                let session = weft_server::open_served_session(&root, options, &session_id, 1)?;
                state.set_ready(Arc::new(session));
                Ok::<_, weft_session::SessionError>(())
            })
        };
        let http = tokio::spawn(serve_worker(Arc::clone(&state), listener));
        match loading.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                state.stop(CloseMode::Cancel);
                let _ = http.await;
                return Err(anyhow::Error::new(e).context("weft worker: the project does not load"));
            }
            Err(join) => {
                state.stop(CloseMode::Cancel);
                let _ = http.await;
                anyhow::bail!("weft worker: loading the project panicked: {join}");
            }
        }
        http.await??;
        writeln!(io.out, "weft worker: stopped after {} runs", state.runs())?;
        Ok::<_, anyhow::Error>(())
    })?;
    // Runs still executing on blocking threads (a cancelled one between
    // nodes) are not waited for past this point.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(crate::error::EXIT_OK)
}

/// `weft node-host`: serves the `process` runner's node calls for the
/// project's pipelines. The protocol runs over stdin and a duplicate of
/// stdout; stdout itself is pointed at stderr first, so whatever a node
/// prints reaches the run's log instead of corrupting the stream. Exits 0
/// when the run closes stdin.
pub(crate) fn node_host(edge: &Edge<'_>, code: &ProjectCode) -> anyhow::Result<u8> {
    let pipelines = weft_session::load_project_pipelines(&edge.project, code)?;
    let protocol = std::fs::File::from(nix::unistd::dup(std::io::stdout())?);
    nix::unistd::dup2_stdout(std::io::stderr())?;
    let stdin = std::io::stdin().lock();
    weft_runner::process_runner::serve_node_host(&pipelines, stdin, std::io::BufWriter::new(protocol))?;
    Ok(0)
}
