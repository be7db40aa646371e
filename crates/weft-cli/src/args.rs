//! Command-line arguments (clap derive). The flags are a public interface:
//! keep them stable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// weft: reproducible data pipelines with sessions.
#[derive(Parser, Debug)]
#[command(name = "weft", version, about, long_about = None)]
pub struct Cli {
    /// The project directory (default: WEFT_PROJECT, else the current directory).
    #[arg(long, global = true)]
    pub project: Option<PathBuf>,
    /// Act on a `weft serve` at this URL instead of the local project (`run`,
    /// `multirun`, `runs`, `sessions`; default: WEFT_SERVER).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// File holding the bearer token: the one `weft serve` requires, or the one
    /// a client sends (default: WEFT_TOKEN).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Log level or filter (`info`, `debug`, `weft_runner=debug`); RUST_LOG works too.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scaffold a new, working project in ./NAME.
    New {
        /// The project's name (also its directory): letters, digits, `_` and `-`.
        name: String,
    },
    /// Run a pipeline once (one session, one run).
    Run(RunArgs),
    /// Run a parameter sweep: the cartesian product of every --params value list.
    Multirun(Box<MultirunArgs>),
    /// Inspect pipelines.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Inspect the merged configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect the data catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Print a pipeline as a Mermaid, DOT or JSON graph.
    Viz(VizArgs),
    /// Recorded sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Recorded runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Serve sessions over HTTP: a durable run queue per session, live
    /// events, idle expiry and crash recovery.
    Serve(Box<ServeArgs>),
    /// Kubernetes: print the manifests of `weft serve`, reconcile orphans.
    #[command(subcommand)]
    K8s(K8sCommand),
    /// Serve ONE session's runs to a `weft serve` master (started by its
    /// process launcher): one run at a time, over HTTP.
    Worker(WorkerArgs),
    /// Serve node calls of the `process` runner over stdin and stdout
    /// (started by a run, one per concurrently running node; not for
    /// interactive use).
    #[command(hide = true)]
    NodeHost,
    /// Run the project's pipeline tests: YAML cases (default `tests/*.yml`)
    /// that replace nodes with scripted outputs or errors and assert outputs,
    /// which nodes ran, their order and counts. Exit 0 all pass, 1 a case
    /// failed, 2 bad input.
    Test(TestArgs),
}

/// `weft test`.
#[derive(Args, Debug, Clone, Default)]
pub struct TestArgs {
    /// Case files (default: every `tests/*.yml` and `tests/*.yaml` of the project).
    pub files: Vec<PathBuf>,
    /// Session configuration (its parameters are the cases' base).
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Where `weft serve` runs sessions' runs.
#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum LauncherArg {
    /// On threads of the server process.
    #[default]
    InProcess,
    /// In `weft worker` child processes (crash isolation), one per unit of
    /// a session's max_concurrency.
    Process,
    /// In `weft worker`s submitted as Ray jobs (Ray's Jobs REST API at
    /// --ray-address), one per unit of a session's max_concurrency.
    Ray,
    /// In `weft worker`s submitted as Slurm batch jobs (`sbatch`), one per
    /// unit of a session's max_concurrency.
    Slurm,
    /// In `weft worker` Pods on Kubernetes (with a Service, a token Secret
    /// and a NetworkPolicy per session), one per unit of a session's
    /// max_concurrency.
    Kubernetes,
}

/// How a Kubernetes launcher creates its workers (with `--launcher kubernetes`).
#[derive(Args, Debug, Clone, Default)]
pub struct K8sArgs {
    /// With --launcher kubernetes: the API server's URL, called without
    /// credentials (e.g. `kubectl proxy`'s http://127.0.0.1:8001); default:
    /// the in-cluster service account, else the kubeconfig.
    #[arg(long)]
    pub k8s_api_url: Option<String>,
    /// With --launcher kubernetes: the namespace of the workers' objects
    /// (default: `default`).
    #[arg(long)]
    pub k8s_namespace: Option<String>,
    /// With --launcher kubernetes: the image of the worker Pods (holding
    /// the worker program and the project at the same path as here).
    #[arg(long)]
    pub k8s_image: Option<String>,
    /// With --launcher kubernetes: CPU request and limit of each worker
    /// Pod (a Kubernetes quantity: 500m, 2).
    #[arg(long)]
    pub k8s_cpu: Option<String>,
    /// With --launcher kubernetes: memory request and limit of each worker
    /// Pod (a Kubernetes quantity: 512Mi, 2Gi).
    #[arg(long)]
    pub k8s_memory: Option<String>,
    /// With --launcher kubernetes: the service account worker Pods run as
    /// (default: the namespace's default; workers never call the API).
    #[arg(long)]
    pub k8s_service_account: Option<String>,
    /// With --launcher kubernetes: the port workers listen on in their Pod
    /// (default 8080).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub k8s_port: Option<u16>,
    /// With --launcher kubernetes: the worker Pods' image pull policy
    /// (Always, IfNotPresent, Never).
    #[arg(long)]
    pub k8s_image_pull_policy: Option<String>,
}

/// Where a Ray launcher submits its workers (with `--launcher ray`).
#[derive(Args, Debug, Clone, Default)]
pub struct RayArgs {
    /// With --launcher ray: the Ray dashboard's URL, whose Jobs API takes
    /// the workers (e.g. http://127.0.0.1:8265).
    #[arg(long)]
    pub ray_address: Option<String>,
    /// With --launcher ray: CPUs reserved for each worker job
    /// (`entrypoint_num_cpus`; default none).
    #[arg(long)]
    pub ray_num_cpus: Option<f64>,
    /// With --launcher ray: memory reserved for each worker job, in bytes
    /// (`entrypoint_memory`; default none).
    #[arg(long)]
    pub ray_memory: Option<u64>,
    /// With --launcher ray: the host workers listen on (default 127.0.0.1,
    /// a head on this machine; 0.0.0.0 announces the node's IP, for a
    /// cluster of several machines).
    #[arg(long)]
    pub ray_listen_host: Option<std::net::IpAddr>,
    /// With --launcher ray: a `runtime_env.working_dir` URI Ray fetches the
    /// project from (workers then run in it with `--project .`); default:
    /// the project at its own path on every node.
    #[arg(long)]
    pub ray_working_dir: Option<String>,
}

/// How a Slurm launcher submits its workers (with `--launcher slurm`).
#[derive(Args, Debug, Clone, Default)]
pub struct SlurmArgs {
    /// With --launcher slurm: the partition of each worker job
    /// (`sbatch --partition`; default: the cluster's default partition).
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// With --launcher slurm: the account each worker job is charged to
    /// (`sbatch --account`).
    #[arg(long)]
    pub slurm_account: Option<String>,
    /// With --launcher slurm: the time limit of each worker job, in any
    /// form sbatch takes (`sbatch --time`: 30, 1:00:00, 2-00).
    #[arg(long)]
    pub slurm_time: Option<String>,
    /// With --launcher slurm: CPUs of each worker job (`sbatch --cpus-per-task`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub slurm_cpus: Option<u32>,
    /// With --launcher slurm: memory of each worker job (`sbatch --mem`,
    /// in MiB rounded up; e.g. 512MiB, 2G, or bytes).
    #[arg(long, value_parser = parse_size_arg)]
    pub slurm_memory: Option<u64>,
    /// With --launcher slurm: one more sbatch option for each worker job
    /// (repeatable; e.g. --slurm-sbatch-arg=--qos=high).
    #[arg(long, allow_hyphen_values = true)]
    pub slurm_sbatch_arg: Vec<String>,
    /// With --launcher slurm: the folder holding sbatch, squeue, sacct,
    /// scontrol and scancel (default: found on PATH).
    #[arg(long)]
    pub slurm_bin_dir: Option<PathBuf>,
    /// With --launcher slurm: where the jobs' output files go (default
    /// <project>/.weft/slurm; a folder the nodes and this machine share).
    #[arg(long)]
    pub slurm_output_dir: Option<PathBuf>,
    /// With --launcher slurm: the host workers listen on (default
    /// 127.0.0.1, a node on this machine; 0.0.0.0 announces the job's
    /// batch host, for a cluster of several machines).
    #[arg(long)]
    pub slurm_listen_host: Option<std::net::IpAddr>,
    /// With --launcher slurm: submit, watch and cancel the worker jobs
    /// through slurmrestd at this URL (http://HOST:PORT, REST API
    /// v0.0.38, JWT auth) instead of sbatch, squeue and scancel.
    #[arg(long)]
    pub slurm_rest_url: Option<String>,
    /// With --slurm-rest-url: the user the jobs run as (X-SLURM-USER-NAME;
    /// default: $USER).
    #[arg(long, requires = "slurm_rest_url")]
    pub slurm_rest_user: Option<String>,
    /// With --slurm-rest-url: a file holding the user's JWT (`scontrol
    /// token`, the bare token or SLURM_JWT=TOKEN; default: the SLURM_JWT
    /// environment variable).
    #[arg(long, requires = "slurm_rest_url")]
    pub slurm_rest_token_file: Option<PathBuf>,
}

/// `weft worker`.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The session this worker serves (the id its run specs carry).
    #[arg(long)]
    pub session_id: String,
    /// Configuration environment (default: WEFT_ENV, else `local`).
    #[arg(long)]
    pub env: Option<String>,
    /// Address to listen on (port 0 picks a free one; the first line on
    /// stdout says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Exit after answering this many runs (the answer says `recycle`).
    #[arg(long)]
    pub max_runs: Option<u32>,
    /// Exit when stdin closes (the launcher holds it: a worker never
    /// outlives its master).
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
    /// The most data memory this process may hold (setrlimit RLIMIT_DATA;
    /// e.g. 512MiB, 2G, or bytes).
    #[arg(long, value_parser = parse_size_arg)]
    pub memory_limit: Option<u64>,
    /// The most CPU seconds one run may use (setrlimit RLIMIT_CPU, re-armed
    /// before each run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cpu_limit_s: Option<u64>,
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    weft_server::parse_size(text)
}

/// `weft serve`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Run store: a `postgres://` URL or a SQLite path (default: WEFT_STORE_URL, else
    /// weft.toml's `[store] url`, else <project>/.weft/weft.db).
    #[arg(long)]
    pub store: Option<String>,
    /// Most runs executing at once over all sessions (default: the machine's cores).
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// Default configuration environment of sessions that name none.
    #[arg(long)]
    pub env: Option<String>,
    /// Idle TTL of sessions that set none, in seconds.
    #[arg(long, default_value_t = 900)]
    pub idle_ttl_s: u64,
    /// A claimed run's lease in seconds: a crashed server's runs are
    /// recovered this long after its last renewal.
    #[arg(long, default_value_t = 30)]
    pub lease_s: u64,
    /// How long shutdown (SIGTERM, Ctrl-C) waits for running runs, in seconds.
    #[arg(long, default_value_t = 30)]
    pub grace_s: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --launcher kubernetes: also run the pass of `weft k8s
    /// reconcile` (defaults: --stale-after 24h, --missing-grace 2m) in this
    /// server every this many seconds, on its own sessions (default: never;
    /// the CronJob of `weft k8s manifests` runs it).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub k8s_reconcile_every_s: Option<u64>,
    /// Where runs execute and its flags.
    #[command(flatten)]
    pub launcher: LauncherArgs,
}

/// `--launcher` and the flags of the launchers that start workers.
#[derive(Args, Debug, Clone, Default)]
pub struct LauncherArgs {
    /// Where runs execute: threads of this process, `weft worker` child
    /// processes, or `weft worker`s as Ray jobs, Slurm batch jobs or Kubernetes Pods.
    #[arg(long, value_enum, default_value_t = LauncherArg::InProcess)]
    pub launcher: LauncherArg,
    /// With --launcher process|ray|slurm|kubernetes: each worker exits after this many runs
    /// and is replaced.
    #[arg(long)]
    pub worker_max_runs: Option<u32>,
    /// With --launcher process|ray|slurm|kubernetes: the program started as `PROGRAM worker
    /// ...` (default: this executable; with ray or slurm, a path valid on the
    /// nodes; with kubernetes, a program in the image, default `weft`).
    #[arg(long)]
    pub worker_program: Option<PathBuf>,
    /// With --launcher process|ray|slurm|kubernetes: seconds a worker may take to become
    /// ready before its session fails (`worker_healthz_timeout`).
    #[arg(long, default_value_t = 60.0)]
    pub worker_ready_timeout_s: f64,
    /// With --launcher process|ray|slurm|kubernetes: the most data memory each worker may
    /// hold (setrlimit RLIMIT_DATA; e.g. 512MiB, 2G); a run past it fails
    /// naming the limit.
    #[arg(long, value_parser = parse_size_arg)]
    pub worker_memory_limit: Option<u64>,
    /// With --launcher process|ray|slurm|kubernetes: the most CPU seconds one run may use
    /// (setrlimit RLIMIT_CPU, re-armed per run); a run past it fails naming
    /// the limit.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub worker_cpu_limit_s: Option<u64>,
    /// Ray's flags.
    #[command(flatten)]
    pub ray: RayArgs,
    /// Slurm's flags.
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Kubernetes' flags.
    #[command(flatten)]
    pub k8s: K8sArgs,
}

/// Flags that select what to run (Kedro's `run` flags).
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Pipelines to run (comma-separated; default: the project's default pipeline).
    #[arg(long = "pipelines", visible_alias = "pipeline", value_delimiter = ',')]
    pub pipelines: Vec<String>,
    /// Only nodes with any of these tags.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Only these nodes.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// These nodes and everything downstream.
    #[arg(long, value_delimiter = ',')]
    pub from_nodes: Vec<String>,
    /// These nodes and everything upstream.
    #[arg(long, value_delimiter = ',')]
    pub to_nodes: Vec<String>,
    /// Nodes that depend on these datasets.
    #[arg(long, value_delimiter = ',')]
    pub from_inputs: Vec<String>,
    /// Nodes needed to produce these datasets.
    #[arg(long, value_delimiter = ',')]
    pub to_outputs: Vec<String>,
    /// Only nodes in these namespaces.
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
}

/// Flags that configure the session.
#[derive(Args, Debug, Clone, Default)]
pub struct SessionArgs {
    /// Configuration environment: a folder of the conf source (default: WEFT_ENV, else `local`).
    #[arg(long)]
    pub env: Option<String>,
    /// Configuration folder (default: weft.toml's conf_source, `conf`).
    #[arg(long)]
    pub conf_source: Option<PathBuf>,
    /// Run store: a `postgres://` URL or a SQLite path (default: WEFT_STORE_URL, else
    /// weft.toml's `[store] url`, else <project>/.weft/weft.db).
    #[arg(long)]
    pub store: Option<String>,
    /// Do not record anything in the run store.
    #[arg(long)]
    pub no_store: bool,
    /// Connection validation: strict, warn or off.
    #[arg(long)]
    pub type_check: Option<String>,
}

/// `weft run`.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// What to run.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Session configuration.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Runtime parameters: "a=1,b.c=x,l=[1,2]" (dotted keys nest; values in Hydra's override grammar). In multirun, sweeps: "lr=0.1,0.2", "b=range(16,65,16)", "o=choice(adam,sgd)".
    #[arg(long)]
    pub params: Vec<String>,
    /// Dataset versions to load: "ds:version,ds2:version".
    #[arg(long, value_delimiter = ',')]
    pub load_versions: Vec<String>,
    /// `sequential`, `thread` or `async` (default: weft.toml's `[run] runner`, else sequential).
    #[arg(long)]
    pub runner: Option<String>,
    /// Threads for the thread runner; nodes in flight for the async runner (default 64).
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// The run's time limit: `500ms`, `30s`, `5m`, `1h` (default: weft.toml's `[run] timeout`, else none).
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<String>,
    /// Skip nodes whose outputs are all persisted and exist.
    #[arg(long)]
    pub only_missing_outputs: bool,
    /// A JSON file mapping free input datasets to values, injected as memory
    /// datasets for this run only (`{"features": [[1, 2], [3, 4]]}`).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Answer an `await_input` node: `NODE=FILE`, FILE holding the JSON
    /// answer (checked against the node's schema). Repeatable. Without it,
    /// a run that asks prompts on a terminal and fails elsewhere.
    #[arg(long = "input", value_name = "NODE=FILE")]
    pub answers: Vec<String>,
    /// Print the run result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the run's (a sweep's: all its runs') metrics to this file in
    /// Prometheus's text format: run and node durations, statuses, rows in
    /// and out, retries, connection validation (the series of `weft
    /// serve`'s `/metrics`).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

/// `weft multirun`. Here `--max-workers` is the number of runs at once
/// (each run uses `--runner`, sequential by default).
#[derive(Args, Debug, Clone)]
pub struct MultirunArgs {
    /// Every `weft run` flag.
    #[command(flatten)]
    pub run: RunArgs,
    /// A YAML file of sweeps: `key: [v1, v2]`, `key: "range(1,10,2)"`, `key: "choice(a,b)"`.
    #[arg(long)]
    pub sweep_file: Option<PathBuf>,
    /// `fail-fast`, `continue` or `retry:N`.
    #[arg(long, default_value = "fail-fast")]
    pub policy: String,
    /// Delete the versioned outputs of failed runs.
    #[arg(long)]
    pub cleanup_on_error: bool,
    /// Refuse sweeps of more runs than this (the product of the sweep sizes).
    #[arg(long, default_value_t = weft_config::overrides::DEFAULT_MAX_RUNS)]
    pub max_runs: u64,
    /// Metrics (free outputs) to show in the table, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Where the runs execute (`--max-workers` workers with process|ray|slurm|kubernetes).
    #[command(flatten)]
    pub launcher: LauncherArgs,
}

/// `weft pipeline ...`.
#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// List the project's pipelines.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Session configuration.
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Show a pipeline's nodes in topological order, after filters.
    Show {
        /// JSON output: {"nodes":[{"name","func","inputs","outputs","tags","namespace"}]}.
        #[arg(long)]
        json: bool,
        /// Filters (`--pipeline NAME` picks the pipeline).
        #[command(flatten)]
        filter: FilterArgs,
        /// Session configuration.
        #[command(flatten)]
        session: SessionArgs,
    },
}

/// `weft config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the merged configuration as JSON.
    Show {
        /// Only this section: parameters, catalog, globals or credentials.
        #[arg(long)]
        section: Option<String>,
        /// Runtime parameters, as for `weft run`.
        #[arg(long)]
        params: Vec<String>,
        /// Show credentials unmasked.
        #[arg(long)]
        show_credentials: bool,
        /// JSON output (the only format; accepted for consistency).
        #[arg(long)]
        json: bool,
        /// Session configuration.
        #[command(flatten)]
        session: SessionArgs,
    },
}

/// `weft catalog ...`.
#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// List datasets (declared, and used by pipelines) with type, path and versioning.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Pipelines whose datasets to include (default: all).
        #[arg(long = "pipelines", visible_alias = "pipeline", value_delimiter = ',')]
        pipelines: Vec<String>,
        /// Session configuration.
        #[command(flatten)]
        session: SessionArgs,
    },
}

/// `weft viz`.
#[derive(Args, Debug)]
pub struct VizArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = VizFormat::Mermaid)]
    pub format: VizFormat,
    /// JSON output (same as `--format json`).
    #[arg(long)]
    pub json: bool,
    /// Filters (`--pipeline NAME` picks the pipeline).
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Session configuration.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Graph text formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum VizFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// `{"nodes":[..],"datasets":[..],"edges":[..]}`.
    Json,
}

/// `weft k8s ...`.
#[derive(Subcommand, Debug)]
pub enum K8sCommand {
    /// Print YAML for `weft serve` on Kubernetes: its ServiceAccount, Role
    /// (the launcher's least verbs) and RoleBinding, its Deployment and
    /// Service, and the reconcile CronJob.
    Manifests {
        /// The namespace of every object.
        #[arg(long, default_value = "weft")]
        namespace: String,
        /// The image of `weft serve`, its workers and the reconcile job.
        #[arg(long, default_value = "weft:latest")]
        image: String,
        /// The project folder inside the image.
        #[arg(long = "image-project", default_value = "/project")]
        image_project: String,
        /// The reconcile CronJob's schedule.
        #[arg(long, default_value = "*/15 * * * *")]
        schedule: String,
    },
    /// Close sessions stale past --stale-after or whose worker objects are
    /// missing (through the `weft serve` at --server), and delete weft
    /// objects whose session is closed or unknown.
    Reconcile {
        /// A live session silent this long is closed (`90s`, `30m`, `24h`, `2d`).
        #[arg(long, default_value = "24h")]
        stale_after: String,
        /// A live session whose root ConfigMap is this old with no worker
        /// Pod is closed.
        #[arg(long, default_value = "2m")]
        missing_grace: String,
        /// Only print what would be closed and deleted.
        #[arg(long)]
        dry_run: bool,
        /// The API server's URL (default: in-cluster, else the kubeconfig).
        #[arg(long)]
        k8s_api_url: Option<String>,
        /// The namespace of the weft objects.
        #[arg(long, default_value = "default")]
        k8s_namespace: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `weft sessions ...`.
#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List recorded sessions, newest first.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
        /// Run store (default: WEFT_STORE_URL, else the project's).
        #[arg(long)]
        store: Option<String>,
    },
}

/// `weft runs ...`.
#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List recorded runs, newest first.
    List {
        /// Only this session's runs.
        #[arg(long)]
        session: Option<String>,
        /// Only runs with this status.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Run store (default: WEFT_STORE_URL, else the project's).
        #[arg(long)]
        store: Option<String>,
    },
    /// Show one run.
    Show {
        /// The run id.
        run_id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Run store (default: WEFT_STORE_URL, else the project's).
        #[arg(long)]
        store: Option<String>,
    },
    /// Answer a run waiting for input on a server (`--server`): FILE holds
    /// the JSON answer, checked against the `await_input` node's schema;
    /// the run is queued again.
    Answer {
        /// The run id.
        run_id: String,
        /// A JSON file with the answer.
        file: PathBuf,
        /// The node answered (default: the one the run waits at).
        #[arg(long)]
        node: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run on a server (`--server`): a queued run without running
    /// it, a running one between nodes.
    Cancel {
        /// The run id.
        run_id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print one run's log lines (from its session's log under `logs/`).
    Logs {
        /// The run id.
        run_id: String,
    },
    /// Compare two runs: parameters, versions and metrics side by side.
    Compare {
        /// First run id.
        run_a: String,
        /// Second run id.
        run_b: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Run store (default: WEFT_STORE_URL, else the project's).
        #[arg(long)]
        store: Option<String>,
    },
}

/// Checks `--timeout` when the command line is parsed; the run gets the text.
fn parse_timeout(text: &str) -> Result<String, String> {
    weft_pipeline::parse_duration(text).map(|_| text.trim().to_string())
}
