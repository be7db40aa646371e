//! Configuration loading with Kedro's rules (OmegaConfigLoader semantics).
//!
//! * `conf/base` + `conf/<env>` (default env `local`): files matching a
//!   section's patterns (`catalog*`, `catalog*/**`, `**/catalog*`, and so on
//!   for `parameters` and `credentials`; `globals.yml` for globals), YAML or
//!   JSON, hidden files ignored.
//! * Within one environment, a top-level key defined in two files is an
//!   error naming both files (for parameters: a dotted leaf key).
//! * The run environment overrides base per top-level key (`Destructive`,
//!   default) or deeply (`Soft`).
//! * `${globals:..}`, `${runtime_params:..}`, `${env:..}` (credentials only)
//!   and same-section `${a.b}` interpolation, with `,default`.
//! * Top-level keys starting with `_` are dropped after interpolation (use
//!   them as YAML anchors or variables).
//!
//! Every problem found in one load is reported at once.

mod error;
mod interpolate;
mod params;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::ConfigError;
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
}

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

/// Matches one path component against a pattern component with `*` wildcards.
fn component_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// Glob match on `/`-separated components; `**` matches any number of them.
fn glob_matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| glob_matches(rest, &path[i..])),
        Some((first, rest)) => {
            !path.is_empty() && component_matches(first, path[0]) && glob_matches(rest, &path[1..])
        }
    }
}

fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) -> Result<(), ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
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

/// Flattens an object to dotted leaf keys (objects recurse; anything else is a leaf).
fn leaf_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_keys(v, &key, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

impl ConfigLoader {
    /// A loader for `conf_source` (the `conf` folder), environment `env`
    /// (default `local`) and runtime params (a JSON object, or null).
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
        }
    }

    /// Sets how `section` merges env over base.
    pub fn with_merge_strategy(mut self, section: &str, strategy: MergeStrategy) -> Self {
        self.strategies.insert(section.into(), strategy);
        self
    }

    /// Sets the file patterns of a (possibly custom) section.
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

    /// The runtime parameters.
    pub fn runtime_params(&self) -> &Value {
        &self.runtime_params
    }

    fn files(&self, env_dir: &Path, section: &str) -> Result<Vec<PathBuf>, ConfigError> {
        if !env_dir.is_dir() {
            return Ok(Vec::new());
        }
        let patterns = self
            .patterns
            .get(section)
            .cloned()
            .unwrap_or_else(|| default_patterns(section));
        let mut all = Vec::new();
        walk(env_dir, &mut Vec::new(), &mut all)?;
        Ok(all
            .into_iter()
            .filter(|(_, rel)| {
                let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
                patterns.iter().any(|p| {
                    let p: Vec<&str> = p.split('/').collect();
                    glob_matches(&p, &rel)
                })
            })
            .map(|(p, _)| p)
            .collect())
    }

    /// Loads and merges one environment's files of a section.
    fn load_env(
        &self,
        env_dir: &Path,
        section: &str,
        problems: &mut Vec<String>,
        origins: &mut BTreeMap<String, PathBuf>,
    ) -> Result<serde_json::Map<String, Value>, ConfigError> {
        let mut merged = serde_json::Map::new();
        let mut leaf_origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut key_origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in self.files(env_dir, section)? {
            let value = match yaml::load_file(&file) {
                Ok(v) => v,
                Err(e @ ConfigError::Parse { .. }) => {
                    problems.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let map = match value {
                Value::Object(m) => m,
                Value::Null => continue,
                other => {
                    problems.push(format!(
                        "{}: the top level must be a map of keys, got {}",
                        file.display(),
                        short(&other)
                    ));
                    continue;
                }
            };
            if section == "parameters" {
                for (k, v) in &map {
                    let mut leaves = Vec::new();
                    leaf_keys(v, k, &mut leaves);
                    for leaf in leaves {
                        if let Some(prev) = leaf_origin.get(&leaf) {
                            problems.push(format!(
                                "duplicate parameter `{leaf}` in {} and {}",
                                prev.display(),
                                file.display()
                            ));
                        } else {
                            leaf_origin.insert(leaf, file.clone());
                        }
                    }
                }
                for (k, v) in map {
                    key_origin.entry(k.clone()).or_insert_with(|| file.clone());
                    origins.insert(k.clone(), file.clone());
                    match merged.get_mut(&k) {
                        Some(existing) => deep_merge(existing, v),
                        None => {
                            merged.insert(k, v);
                        }
                    }
                }
            } else {
                for (k, v) in map {
                    if let Some(prev) = key_origin.get(&k) {
                        problems.push(format!(
                            "duplicate key `{k}` in {} and {}",
                            prev.display(),
                            file.display()
                        ));
                        continue;
                    }
                    key_origin.insert(k.clone(), file.clone());
                    origins.insert(k.clone(), file.clone());
                    merged.insert(k, v);
                }
            }
        }
        Ok(merged)
    }

    fn merged_raw(
        &self,
        section: &str,
        problems: &mut Vec<String>,
        origins: &mut BTreeMap<String, PathBuf>,
    ) -> Result<Value, ConfigError> {
        let base_dir = self.conf_source.join(BASE_ENV);
        if !base_dir.is_dir() {
            return Err(ConfigError::MissingBase {
                conf_source: self.conf_source.clone(),
            });
        }
        let mut merged = self.load_env(&base_dir, section, problems, origins)?;
        if self.env != BASE_ENV {
            let env_values = self.load_env(&self.conf_source.join(&self.env), section, problems, origins)?;
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

    fn globals(&self) -> Result<Value, ConfigError> {
        self.load_section("globals", &Value::Object(Default::default()))
    }

    fn load_section(&self, section: &str, globals: &Value) -> Result<Value, ConfigError> {
        let mut problems = Vec::new();
        let mut origins = BTreeMap::new();
        let raw = self.merged_raw(section, &mut problems, &mut origins)?;
        let sources = interpolate::Sources {
            section,
            globals,
            runtime_params: &self.runtime_params,
            allow_env: section == "credentials",
            root: &raw,
        };
        let mut out = serde_json::Map::new();
        if let Value::Object(map) = &raw {
            for (k, v) in map {
                match interpolate::resolve(v, &sources, &mut Vec::new(), k) {
                    Ok(resolved) => {
                        if !k.starts_with('_') {
                            out.insert(k.clone(), resolved);
                        }
                    }
                    Err(e) => {
                        let origin = origins
                            .get(k)
                            .map(|p| format!(" ({})", p.display()))
                            .unwrap_or_default();
                        problems.push(format!("{e}{origin}"));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(Value::Object(out))
        } else {
            Err(ConfigError::Invalid {
                section: section.to_string(),
                problems,
            })
        }
    }

    /// Loads one section (`catalog`, `parameters`, `credentials`, `globals`
    /// or a custom one registered with [`ConfigLoader::with_patterns`]) as
    /// it stands in the configuration files (runtime params only through
    /// `${runtime_params:..}`).
    pub fn get(&self, section: &str) -> Result<Value, ConfigError> {
        if section == "globals" {
            return self.globals();
        }
        let globals = self.globals()?;
        self.load_section(section, &globals)
    }

    /// The parameters a run uses: the `parameters` section with the runtime
    /// params deep-merged on top (a copy; the runtime params are untouched).
    pub fn parameters(&self) -> Result<Value, ConfigError> {
        let mut params = self.get("parameters")?;
        deep_merge(&mut params, self.runtime_params.clone());
        Ok(params)
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
        let m = |p: &str, path: &str| {
            glob_matches(
                &p.split('/').collect::<Vec<_>>(),
                &path.split('/').collect::<Vec<_>>(),
            )
        };
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
    }
}
