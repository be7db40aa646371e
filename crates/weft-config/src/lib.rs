//! Configuration loading with Kedro's rules (OmegaConfigLoader semantics).
//!
//! * `conf/base` + `conf/<env>` (default env `local`; a missing env folder
//!   is empty, a missing `base` is an error): files matching a section's
//!   patterns (`catalog*`, `catalog*/**`, `**/catalog*`, and so on for
//!   `parameters` and `credentials`; `globals.yml`/`globals.yaml` for
//!   globals; custom sections via [`ConfigLoader::with_patterns`]), `.yml`,
//!   `.yaml` or `.json`, hidden files and folders ignored, loaded in sorted
//!   path order.
//! * Within one environment, a top-level key defined in two files is an
//!   error naming both files and lines (for parameters: the same dotted
//!   leaf key, or a plain value in one file where the other has sub-keys).
//! * The run environment overrides base per top-level key
//!   ([`MergeStrategy::Destructive`], default) or deeply
//!   ([`MergeStrategy::Soft`]).
//! * `${globals:..}`, `${runtime_params:..}` (not in globals),
//!   `${oc.env:..}`/`${env:..}` (credentials only) and same-section `${a.b}`
//!   interpolation, each with an optional `,default` typed like a YAML
//!   scalar; `\${` escapes. A value that is exactly one reference keeps the
//!   referenced type.
//! * Top-level keys starting with `_` are dropped after interpolation (use
//!   them as YAML anchors or variables).
//!
//! * YAML is read as Kedro's loader reads it (YAML 1.1 via PyYAML and
//!   OmegaConf): `yes`/`on`/`No`/`OFF`... are booleans, `y`/`n` are not;
//!   the full table is in [`yaml`]. Duplicate keys, nesting and alias limits
//!   are reported with file and line in weft's words.
//! * Runtime parameters and sweeps follow Hydra 1.3's override grammar
//!   ([`overrides`]: values, lists, maps, quotes, escapes, `range`,
//!   `choice`, `sort`, `shuffle`, casts), with sweep sizes counted before
//!   anything is expanded.
//!
//! Every problem found in one load (including those of the globals the
//! section uses) is reported at once in [`ConfigError::Invalid`].
//!
//! ```
//! use serde_json::json;
//! let runtime = weft_config::parse_runtime_params("model.lr=0.5,name:run").unwrap();
//! assert_eq!(runtime, json!({"model": {"lr": 0.5}, "name": "run"}));
//! let mut params = json!({"model": {"lr": 0.1, "depth": 3}});
//! weft_config::deep_merge(&mut params, runtime);
//! assert_eq!(params, json!({"model": {"lr": 0.5, "depth": 3}, "name": "run"}));
//! ```

mod error;
mod interpolate;
mod locate;
pub mod overrides;
mod params;
pub mod yaml;
mod yaml_fast;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::{ConfigError, Problem, ProblemKind};
pub use locate::KeyLocator;
pub use params::{deep_merge, mask_credentials, parse_runtime_params, scalar};

/// How the run environment combines with `base`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MergeStrategy {
    /// A top-level key in the env replaces base's whole value (default).
    #[default]
    Destructive,
    /// Env values are deep-merged into base's.
    Soft,
}

/// The name of the base environment.
pub const BASE_ENV: &str = "base";
/// The default run environment.
pub const DEFAULT_RUN_ENV: &str = "local";

/// Loads configuration sections for one environment and set of runtime params.
#[derive(Clone, Debug)]
pub struct ConfigLoader {
    conf_source: PathBuf,
    env: String,
    runtime_params: Value,
    strategies: BTreeMap<String, MergeStrategy>,
    patterns: BTreeMap<String, Vec<String>>,
    environment: std::sync::Arc<BTreeMap<String, String>>,
}

/// The sections with built-in file patterns.
pub const BUILTIN_SECTIONS: [&str; 4] = ["catalog", "parameters", "credentials", "globals"];

fn default_patterns(section: &str) -> Vec<String> {
    if section == "globals" {
        return vec!["globals.yml".into(), "globals.yaml".into(), "globals.json".into()];
    }
    vec![
        format!("{section}*"),
        format!("{section}*/**"),
        format!("**/{section}*"),
    ]
}

/// The glob set of a section's file patterns (`*` within a name, `**` for
/// any number of folders), relative to an environment folder.
fn glob_set(section: &str, patterns: &[String]) -> Result<globset::GlobSet, ConfigError> {
    let mut set = globset::GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| ConfigError::Pattern {
                section: section.to_string(),
                pattern: pattern.clone(),
                source,
            })?;
        set.add(glob);
    }
    set.build().map_err(|source| ConfigError::Pattern {
        section: section.to_string(),
        pattern: patterns.join(", "),
        source,
    })
}

/// Deepest folder nesting followed under an environment (guards symlink loops).
const MAX_DEPTH: usize = 32;

fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) -> Result<(), ConfigError> {
    if rel.len() > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        rel.push(name);
        if path.is_dir() {
            walk(&path, rel, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yml" || e == "yaml" || e == "json")
        {
            out.push((path, rel.clone()));
        }
        rel.pop();
    }
    Ok(())
}

/// Flattens an object to dotted leaf keys (objects recurse, empty objects
/// define nothing; anything else is a leaf).
fn leaf_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                leaf_keys(v, &join_key(prefix, k), out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Records `file` as the origin of every dotted path in `v`.
fn record_origins(v: &Value, prefix: &str, file: &Path, origins: &mut BTreeMap<String, PathBuf>) {
    if !prefix.is_empty() {
        origins.insert(prefix.to_string(), file.to_path_buf());
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                record_origins(v, &join_key(prefix, k), file, origins);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                record_origins(v, &join_key(prefix, &i.to_string()), file, origins);
            }
        }
        _ => {}
    }
}

/// The state of loading one section: files read, where each key came from,
/// and every problem found so far.
#[derive(Default)]
struct Load {
    texts: BTreeMap<PathBuf, String>,
    origins: BTreeMap<String, PathBuf>,
    problems: Vec<Problem>,
}

impl Load {
    /// The line of a dotted key in a file read during this load, falling
    /// back to the nearest ancestor key that can be found.
    fn line(&self, file: &Path, dotted: &str) -> Option<usize> {
        let text = self.texts.get(file)?;
        let parts: Vec<&str> = dotted.split('.').collect();
        (1..=parts.len())
            .rev()
            .find_map(|n| yaml::line_of(text, &parts[..n]))
    }

    /// The file that defined a dotted key (or its nearest recorded ancestor).
    fn origin(&self, dotted: &str) -> Option<PathBuf> {
        let parts: Vec<&str> = dotted.split('.').collect();
        (1..=parts.len())
            .rev()
            .find_map(|n| self.origins.get(&parts[..n].join(".")).cloned())
    }

    fn duplicate(&mut self, message: String, key: &str, first: &Path, first_key: &str, file: &Path) {
        let problem = Problem {
            kind: ProblemKind::Duplicate {
                first_file: first.to_path_buf(),
                first_line: self.line(first, first_key),
            },
            line: self.line(file, key),
            column: None,
            file: Some(file.to_path_buf()),
            key: key.to_string(),
            message,
        };
        self.problems.push(problem);
    }
}

impl ConfigLoader {
    /// A loader for `conf_source` (the `conf` folder), environment `env`
    /// (default `local`) and runtime params (a JSON object, or null for
    /// none). Nothing is read until a section is requested.
    pub fn new(conf_source: impl Into<PathBuf>, env: Option<&str>, runtime_params: Value) -> Self {
        ConfigLoader {
            conf_source: conf_source.into(),
            env: env.unwrap_or(DEFAULT_RUN_ENV).to_string(),
            runtime_params: if runtime_params.is_null() {
                Value::Object(Default::default())
            } else {
                runtime_params
            },
            strategies: BTreeMap::new(),
            patterns: BTreeMap::new(),
            environment: Default::default(),
        }
    }

    /// Sets the environment variables `${oc.env:NAME}` (credentials only)
    /// resolves against. The library reads no process environment: the
    /// caller (CLI, server) hands it in; without this call none is set.
    pub fn with_environment(mut self, environment: std::sync::Arc<BTreeMap<String, String>>) -> Self {
        self.environment = environment;
        self
    }

    /// Sets how `section` merges the run environment over base
    /// ([`MergeStrategy::Destructive`] unless set).
    pub fn with_merge_strategy(mut self, section: &str, strategy: MergeStrategy) -> Self {
        self.strategies.insert(section.into(), strategy);
        self
    }

    /// Sets the file patterns (globs relative to an environment folder, `*`
    /// within a name, `**` for any number of folders) of a built-in or
    /// custom section.
    pub fn with_patterns(mut self, section: &str, patterns: Vec<String>) -> Self {
        self.patterns.insert(section.into(), patterns);
        self
    }

    /// The run environment.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// The configuration folder.
    pub fn conf_source(&self) -> &Path {
        &self.conf_source
    }

    /// The runtime parameters (an object; empty when none were given).
    pub fn runtime_params(&self) -> &Value {
        &self.runtime_params
    }

    fn patterns_of(&self, section: &str) -> Result<Vec<String>, ConfigError> {
        match self.patterns.get(section) {
            Some(p) => Ok(p.clone()),
            None if BUILTIN_SECTIONS.contains(&section) => Ok(default_patterns(section)),
            None => Err(ConfigError::UnknownSection {
                section: section.to_string(),
            }),
        }
    }

    /// The files of `section` under one environment folder, sorted by path.
    fn files(&self, env_dir: &Path, section: &str) -> Result<Vec<PathBuf>, ConfigError> {
        if !env_dir.is_dir() {
            return Ok(Vec::new());
        }
        let patterns = glob_set(section, &self.patterns_of(section)?)?;
        let mut all = Vec::new();
        walk(env_dir, &mut Vec::new(), &mut all)?;
        let mut matched: Vec<(String, PathBuf)> = all
            .into_iter()
            .map(|(path, rel)| (rel.join("/"), path))
            .filter(|(rel, _)| patterns.is_match(rel))
            .collect();
        matched.sort();
        Ok(matched.into_iter().map(|(_, p)| p).collect())
    }

    /// Loads and merges one environment's files of a section.
    fn load_env(
        &self,
        env_dir: &Path,
        section: &str,
        load: &mut Load,
    ) -> Result<serde_json::Map<String, Value>, ConfigError> {
        let mut merged = serde_json::Map::new();
        let mut leaf_origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut key_origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in self.files(env_dir, section)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Io {
                path: file.clone(),
                source,
            })?;
            let parsed = yaml::parse_text(&text, &file);
            load.texts.insert(file.clone(), text);
            let map = match parsed {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => continue,
                Ok(other) => {
                    load.problems.push(Problem {
                        kind: ProblemKind::NotAMapping,
                        file: Some(file.clone()),
                        line: Some(1),
                        column: None,
                        key: String::new(),
                        message: format!("the top level must be a mapping of keys, got {}", short(&other)),
                    });
                    continue;
                }
                Err(ConfigError::Parse {
                    line,
                    column,
                    message,
                    ..
                }) => {
                    load.problems.push(Problem {
                        kind: ProblemKind::Syntax,
                        file: Some(file.clone()),
                        line,
                        column,
                        key: String::new(),
                        message,
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            if section == "parameters" {
                let mut leaves = Vec::new();
                leaf_keys(&Value::Object(map.clone()), "", &mut leaves);
                for leaf in &leaves {
                    self.check_leaf(leaf, &file, &leaf_origin, load);
                }
                for leaf in leaves {
                    leaf_origin.entry(leaf).or_insert_with(|| file.clone());
                }
                for (k, v) in map {
                    record_origins(&v, &k, &file, &mut load.origins);
                    match merged.get_mut(&k) {
                        Some(existing) => deep_merge(existing, v),
                        None => {
                            merged.insert(k, v);
                        }
                    }
                }
            } else {
                for (k, v) in map {
                    if let Some(prev) = key_origin.get(&k).cloned() {
                        load.duplicate(format!("duplicate key `{k}`"), &k, &prev, &k, &file);
                        continue;
                    }
                    key_origin.insert(k.clone(), file.clone());
                    record_origins(&v, &k, &file, &mut load.origins);
                    merged.insert(k, v);
                }
            }
        }
        Ok(merged)
    }

    /// A parameter leaf clashes with another file's when they are the same
    /// key, or one is a plain value where the other has sub-keys.
    fn check_leaf(&self, leaf: &str, file: &Path, leaf_origin: &BTreeMap<String, PathBuf>, load: &mut Load) {
        if let Some(prev) = leaf_origin.get(leaf) {
            load.duplicate(format!("duplicate parameter `{leaf}`"), leaf, prev, leaf, file);
            return;
        }
        let parts: Vec<&str> = leaf.split('.').collect();
        for n in 1..parts.len() {
            let ancestor = parts[..n].join(".");
            if let Some(prev) = leaf_origin.get(&ancestor) {
                load.duplicate(
                    format!("conflicting parameter `{ancestor}`: a plain value in one file, has the sub-key `{leaf}` in the other"),
                    leaf,
                    prev,
                    &ancestor,
                    file,
                );
                return;
            }
        }
        let below = format!("{leaf}.");
        if let Some((other, prev)) = leaf_origin
            .range(below.clone()..)
            .find(|(k, _)| k.starts_with(&below))
        {
            load.duplicate(
                format!("conflicting parameter `{leaf}`: has the sub-key `{other}` in one file, a plain value in the other"),
                leaf,
                prev,
                other,
                file,
            );
        }
    }

    /// base + env of a section, not yet interpolated.
    fn merged_raw(&self, section: &str, load: &mut Load) -> Result<Value, ConfigError> {
        let base_dir = self.conf_source.join(BASE_ENV);
        if !base_dir.is_dir() {
            return Err(ConfigError::MissingBase {
                conf_source: self.conf_source.clone(),
            });
        }
        let mut merged = self.load_env(&base_dir, section, load)?;
        if self.env != BASE_ENV {
            let env_values = self.load_env(&self.conf_source.join(&self.env), section, load)?;
            let strategy = self.strategies.get(section).copied().unwrap_or_default();
            for (k, v) in env_values {
                match (strategy, merged.get_mut(&k)) {
                    (MergeStrategy::Soft, Some(existing)) => deep_merge(existing, v),
                    _ => {
                        merged.insert(k, v);
                    }
                }
            }
        }
        Ok(Value::Object(merged))
    }

    /// Loads, merges and interpolates a section; problems are returned with
    /// the (partially resolved) value so callers can report them together.
    fn load_section(&self, section: &str, globals: &Value) -> Result<(Value, Vec<Problem>), ConfigError> {
        let mut load = Load::default();
        let raw = self.merged_raw(section, &mut load)?;
        let sources = interpolate::Sources {
            section,
            globals,
            runtime_params: &self.runtime_params,
            allow_env: section == "credentials",
            environment: &self.environment,
            allow_runtime_params: section != "globals",
            root: &raw,
        };
        let mut out = serde_json::Map::new();
        let mut failures = Vec::new();
        if let Value::Object(map) = &raw {
            for (k, v) in map {
                let resolved = interpolate::resolve(v, &sources, &mut vec![k.clone()], k, &mut failures);
                if !k.starts_with('_') {
                    out.insert(k.clone(), resolved);
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for failure in failures {
            if !seen.insert(failure.clone()) {
                continue;
            }
            let file = load.origin(&failure.path);
            let line = file.as_deref().and_then(|f| load.line(f, &failure.path));
            load.problems.push(Problem {
                kind: ProblemKind::Interpolation,
                file,
                line,
                column: None,
                key: failure.path,
                message: failure.message,
            });
        }
        Ok((Value::Object(out), load.problems))
    }

    /// Loads one section (`catalog`, `parameters`, `credentials`, `globals`
    /// or a custom one registered with [`ConfigLoader::with_patterns`]):
    /// base and run environment merged, `${...}` resolved, top-level `_`
    /// keys dropped. Runtime params only enter through
    /// `${runtime_params:..}` (see [`ConfigLoader::parameters`]).
    ///
    /// Every problem found (in the section and in the globals it uses) is
    /// reported in one [`ConfigError::Invalid`].
    pub fn get(&self, section: &str) -> Result<Value, ConfigError> {
        self.patterns_of(section)?;
        let empty = Value::Object(Default::default());
        let (globals, mut problems) = self.load_section("globals", &empty)?;
        if section == "globals" {
            return finish(section, globals, problems);
        }
        let (value, more) = self.load_section(section, &globals)?;
        problems.extend(more);
        finish(section, value, problems)
    }

    /// The parameters a run uses: the `parameters` section with the runtime
    /// params deep-merged on top (a copy; the runtime params are untouched).
    pub fn parameters(&self) -> Result<Value, ConfigError> {
        let mut params = self.get("parameters")?;
        deep_merge(&mut params, self.runtime_params.clone());
        Ok(params)
    }
}

fn finish(section: &str, value: Value, problems: Vec<Problem>) -> Result<Value, ConfigError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            section: section.to_string(),
            problems,
        })
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..57])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, path: &str| glob_set("s", &[p.to_string()]).unwrap().is_match(path);
        assert!(m("catalog*", "catalog.yml"));
        assert!(m("catalog*", "catalog_extra.yaml"));
        assert!(!m("catalog*", "sub/catalog.yml"));
        assert!(m("**/catalog*", "sub/deeper/catalog.yml"));
        assert!(m("**/catalog*", "catalog.yml"));
        assert!(m("catalog*/**", "catalogs/a/b.yml"));
        assert!(!m("catalog*/**", "params/b.yml"));
        assert!(m("globals.yml", "globals.yml"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        let err = glob_set("catalog", &["cat[".to_string()]).unwrap_err();
        assert!(err.to_string().contains("invalid file pattern `cat[`"), "{err}");
    }
}
