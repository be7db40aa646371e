//! A weft project on disk: `weft.toml`, `conf/`, `pipelines.yml`, `data/`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::SessionError;

/// The project file name.
pub const PROJECT_FILE: &str = "weft.toml";

/// `weft.toml`.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// The `[project]` table.
    pub project: ProjectTable,
    /// The `[run]` table (defaults for `weft run`).
    #[serde(default)]
    pub run: RunDefaults,
    /// The `[store]` table.
    #[serde(default)]
    pub store: StoreSettings,
    /// The `[config]` table.
    #[serde(default)]
    pub config: ConfigSettings,
}

/// `[config]` in `weft.toml`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigSettings {
    /// Section → `destructive` (default: the env replaces base per top-level
    /// key) or `soft` (the env is deep-merged into base), as Kedro's
    /// `merge_strategy`.
    #[serde(default)]
    pub merge_strategy: std::collections::BTreeMap<String, String>,
}

/// `[project]` in `weft.toml`.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectTable {
    /// The project's name.
    pub name: String,
    /// The pipeline `weft run` runs when none is named.
    #[serde(default = "default_pipeline")]
    pub default_pipeline: String,
    /// The configuration folder, relative to the project (default `conf`).
    #[serde(default = "default_conf")]
    pub conf_source: String,
    /// The YAML pipelines file, relative to the project (default `pipelines.yml`).
    #[serde(default = "default_pipelines_file")]
    pub pipelines_file: String,
    /// Where the project's own Rust functions live (documentation only:
    /// such projects are crates that call `weft_cli::main_with`).
    #[serde(default)]
    pub functions: Option<String>,
}

/// `[run]` in `weft.toml`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunDefaults {
    /// `strict` (default), `warn` or `off`.
    #[serde(default)]
    pub type_check: Option<String>,
    /// Default runner: `sequential`, `thread`, `async` or `process` (or a registered custom one).
    #[serde(default)]
    pub runner: Option<String>,
    /// Under the `process` runner, only nodes with this tag run in node
    /// hosts (the others on the runner's threads); unset: every node.
    #[serde(default)]
    pub process_tag: Option<String>,
    /// Default run timeout (`30s`, `5m`, ...), for runs that set none.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Datasets whose numeric values are recorded as run metrics (besides
    /// numeric free outputs), e.g. `metrics = ["metrics"]`.
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// `[store]` in `weft.toml`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// A `postgres://` URL or a SQLite path; default `<project>/.weft/weft.db`.
    #[serde(default)]
    pub url: Option<String>,
}

fn default_pipeline() -> String {
    "__default__".into()
}
fn default_conf() -> String {
    "conf".into()
}
fn default_pipelines_file() -> String {
    "pipelines.yml".into()
}

impl ProjectSettings {
    /// Settings for a project named `name` with every default.
    pub fn named(name: &str) -> Self {
        ProjectSettings {
            project: ProjectTable {
                name: name.into(),
                default_pipeline: default_pipeline(),
                conf_source: default_conf(),
                pipelines_file: default_pipelines_file(),
                functions: None,
            },
            run: RunDefaults::default(),
            store: StoreSettings::default(),
            config: ConfigSettings::default(),
        }
    }

    /// Reads `<dir>/weft.toml`.
    pub fn load(dir: &Path) -> Result<Self, SessionError> {
        let path = dir.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| SessionError::Project {
            path: path.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("no {PROJECT_FILE} here; is this a weft project? (create one with `weft new NAME`)")
            } else {
                e.to_string()
            },
        })?;
        toml::from_str(&text).map_err(|e| SessionError::Project {
            path,
            message: e.to_string(),
        })
    }
}

/// A project directory with its settings.
#[derive(Clone, Debug)]
pub struct Project {
    root: PathBuf,
    settings: ProjectSettings,
}

impl Project {
    /// Opens the project at `dir` (reads `weft.toml`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SessionError> {
        let dir = dir.as_ref();
        let root = std::fs::canonicalize(dir).map_err(|e| SessionError::Project {
            path: dir.to_path_buf(),
            message: format!("cannot open project directory: {e}"),
        })?;
        let settings = ProjectSettings::load(&root)?;
        Ok(Project { root, settings })
    }

    /// The project's absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `weft.toml`.
    pub fn settings(&self) -> &ProjectSettings {
        &self.settings
    }

    /// The configuration folder (`conf_source` override, else `weft.toml`'s).
    pub fn conf_dir(&self, conf_source: Option<&Path>) -> PathBuf {
        match conf_source {
            Some(p) if p.is_absolute() => p.to_path_buf(),
            Some(p) => self.root.join(p),
            None => self.root.join(&self.settings.project.conf_source),
        }
    }

    /// A configuration loader for one env and set of runtime params, with
    /// the project's `[config] merge_strategy`.
    pub fn config_loader(
        &self,
        conf_source: Option<&Path>,
        env: &str,
        runtime_params: serde_json::Value,
    ) -> Result<weft_config::ConfigLoader, SessionError> {
        let mut loader =
            weft_config::ConfigLoader::new(self.conf_dir(conf_source), Some(env), runtime_params);
        for (section, strategy) in &self.settings.config.merge_strategy {
            let strategy = match strategy.as_str() {
                "destructive" => weft_config::MergeStrategy::Destructive,
                "soft" => weft_config::MergeStrategy::Soft,
                other => {
                    return Err(SessionError::Project {
                        path: self.root.join(PROJECT_FILE),
                        message: format!(
                            "[config] merge_strategy.{section}: `{other}` is not `destructive` or `soft`"
                        ),
                    });
                }
            };
            loader = loader.with_merge_strategy(section, strategy);
        }
        Ok(loader)
    }

    /// The YAML pipelines file.
    pub fn pipelines_file(&self) -> PathBuf {
        self.root.join(&self.settings.project.pipelines_file)
    }
}
