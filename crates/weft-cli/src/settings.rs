//! Settings resolved once, at the edge: command-line flags, then environment
//! variables, then `weft.toml`, then defaults. The libraries below read no
//! environment variables; they get the values resolved here.
//!
//! | setting | flag | environment | `weft.toml` | default |
//! |---|---|---|---|---|
//! | project directory | `--project` | `WEFT_PROJECT` | - | `.` |
//! | configuration env | `--env` | `WEFT_ENV` | - | `local` |
//! | run store | `--store` / `--no-store` | `WEFT_STORE_URL` | `[store] url` | `<project>/.weft/weft.db` |
//! | runner | `--runner` | - | `[run] runner` | `sequential` |
//! | run timeout | `--timeout` | - | `[run] timeout` (applied by the session) | none |
//! | user name (recorded) | - | `USER`, else `USERNAME` | - | none |
//! | git commit, dirty flag (recorded) | - | - | - | `git` in the project, if a repository |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_session::{Project, Provenance, StoreChoice};

use crate::args::SessionArgs;
use crate::error::UsageError;

/// The environment variables the CLI reads, captured once at the edge
/// ([`Environment::from_process`]) or given explicitly (tests, embedders).
/// Empty values count as unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

/// Every variable [`Environment::from_process`] captures.
pub const VARIABLES: [&str; 8] = [
    "WEFT_PROJECT",
    "WEFT_SERVER",
    "WEFT_TOKEN",
    "WEFT_ENV",
    "WEFT_STORE_URL",
    "RUST_LOG",
    "USER",
    "USERNAME",
];

impl Environment {
    /// An environment with no variables set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Captures the process environment: [`VARIABLES`] steer weft itself;
    /// every variable is also what credentials' `${oc.env:NAME}` may read.
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    /// Every variable, for `${oc.env:NAME}` in credentials.
    pub fn variables(&self) -> std::sync::Arc<BTreeMap<String, String>> {
        std::sync::Arc::new(self.vars.clone())
    }

    /// This environment with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// What one command runs with, every value explicit.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The configuration environment (a folder of the conf source).
    pub env: String,
    /// Where runs are recorded.
    pub store: StoreChoice,
    /// The runner name, if the flag or `weft.toml` names one.
    pub runner: Option<String>,
    /// Environment variables credentials' `${oc.env:NAME}` resolves against.
    pub variables: std::sync::Arc<BTreeMap<String, String>>,
}

/// The default configuration environment; it may be absent from `conf/`.
pub const DEFAULT_ENV: &str = weft_session::DEFAULT_ENV;

/// The project directory: `--project`, then `WEFT_PROJECT`, then `.`.
pub fn project_dir(flag: Option<&Path>, environment: &Environment) -> PathBuf {
    match (flag, environment.get("WEFT_PROJECT")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => PathBuf::from("."),
    }
}

/// Resolves the settings of a command that opens `project`.
///
/// `runner_flag` is `--runner` for the commands that have it. Errors are
/// usage errors: an env that is not a folder of the conf source (the
/// message lists the envs that exist), a store URL with an unknown scheme.
pub fn resolve(
    session: &SessionArgs,
    runner_flag: Option<&str>,
    environment: &Environment,
    project: &Project,
) -> Result<Settings, UsageError> {
    let env = match session.env.as_deref().or(environment.get("WEFT_ENV")) {
        Some(env) => env.to_string(),
        None => DEFAULT_ENV.to_string(),
    };
    check_env(&env, &project.conf_dir(session.conf_source.as_deref()))?;
    let store = if session.no_store {
        StoreChoice::Disabled
    } else {
        store_choice(
            session.store.as_deref(),
            environment,
            project.settings().store.url.as_deref(),
        )?
    };
    let runner = runner_flag
        .map(str::to_string)
        .or_else(|| project.settings().run.runner.clone());
    Ok(Settings {
        env,
        store,
        runner,
        variables: environment.variables(),
    })
}

/// Who starts a session and from what, collected here at the edge: the
/// user name (`USER`, else `USERNAME`, from `environment`), the project's
/// git commit and dirty flag (two `git` calls, skipped outside a
/// repository), the command line.
pub fn provenance(environment: &Environment, project: Option<&Path>, command: &[String]) -> Provenance {
    let (git_commit, git_dirty) = project.map(git_info).unwrap_or((None, None));
    Provenance {
        username: environment
            .get("USER")
            .or(environment.get("USERNAME"))
            .map(str::to_string),
        git_commit,
        git_dirty,
        command: command.to_vec(),
    }
}

fn git_info(dir: &Path) -> (Option<String>, Option<bool>) {
    // Spawning git costs milliseconds: skip it outside a repository.
    if !dir.ancestors().any(|d| d.join(".git").exists()) {
        return (None, None);
    }
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// The run store by the one precedence rule: `flag`, then `WEFT_STORE_URL`,
/// then `weft.toml`'s `[store] url`, then the project's SQLite file.
pub fn store_choice(
    flag: Option<&str>,
    environment: &Environment,
    project_url: Option<&str>,
) -> Result<StoreChoice, UsageError> {
    let url = flag
        .filter(|u| !u.is_empty())
        .or(environment.get("WEFT_STORE_URL"))
        .or(project_url.filter(|u| !u.is_empty()));
    match url {
        Some(url) => {
            check_store_url(url)?;
            Ok(StoreChoice::Url(url.to_string()))
        }
        None => Ok(StoreChoice::ProjectDefault),
    }
}

/// Schemes the run store understands; anything else with `scheme://` is refused.
const STORE_SCHEMES: [&str; 3] = ["postgres", "postgresql", "sqlite"];

/// A store URL is `postgres://…`, `postgresql://…`, `sqlite://PATH`,
/// `sqlite:PATH` or a plain SQLite file path.
pub fn check_store_url(url: &str) -> Result<(), UsageError> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Ok(());
    };
    let plain = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if plain && !STORE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(UsageError::new(format!(
            "--store: unknown scheme `{scheme}://`; use postgres://..., sqlite://PATH or a SQLite file path"
        )));
    }
    Ok(())
}

pub use weft_session::list_envs;

fn check_env(env: &str, conf_dir: &Path) -> Result<(), UsageError> {
    weft_session::check_env(conf_dir, env).map_err(UsageError::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_precedence_is_flag_then_environment_then_project_then_default() {
        let env = Environment::empty().with("WEFT_STORE_URL", "env.db");
        let url = |c: StoreChoice| match c {
            StoreChoice::Url(u) => u,
            other => format!("{other:?}"),
        };
        assert_eq!(
            url(store_choice(Some("flag.db"), &env, Some("toml.db")).unwrap()),
            "flag.db"
        );
        assert_eq!(url(store_choice(None, &env, Some("toml.db")).unwrap()), "env.db");
        assert_eq!(
            url(store_choice(None, &Environment::empty(), Some("toml.db")).unwrap()),
            "toml.db"
        );
        assert_eq!(
            store_choice(None, &Environment::empty().with("WEFT_STORE_URL", ""), None).unwrap(),
            StoreChoice::ProjectDefault
        );
    }

    #[test]
    fn unknown_store_schemes_are_refused() {
        for bad in ["mysql://h/db", "s3://bucket/x", "redis://localhost"] {
            let e = check_store_url(bad).unwrap_err().to_string();
            assert!(e.contains("unknown scheme"), "{bad}: {e}");
        }
        for good in [
            "postgres://u@h/db",
            "postgresql://h/db",
            "sqlite:///tmp/x.db",
            "sqlite:x.db",
            "runs.db",
            "/tmp/runs.db",
        ] {
            assert!(check_store_url(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn unknown_env_lists_the_envs_and_local_may_be_absent() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("base")).unwrap();
        std::fs::create_dir_all(tmp.path().join("prod")).unwrap();
        assert!(check_env("local", tmp.path()).is_ok());
        assert!(check_env("prod", tmp.path()).is_ok());
        let e = check_env("staging", tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("unknown env `staging`") && e.contains("envs: base, prod"),
            "{e}"
        );
        let e = check_env("../x", tmp.path()).unwrap_err().to_string();
        assert!(e.contains("unknown env"), "{e}");
    }

    #[test]
    fn empty_variables_are_unset() {
        let env = Environment::empty().with("WEFT_ENV", "");
        assert_eq!(env.get("WEFT_ENV"), None);
        assert_eq!(
            project_dir(None, &Environment::empty().with("WEFT_PROJECT", "p")),
            PathBuf::from("p")
        );
        assert_eq!(
            project_dir(
                Some(Path::new("q")),
                &Environment::empty().with("WEFT_PROJECT", "p")
            ),
            PathBuf::from("q")
        );
    }
}
