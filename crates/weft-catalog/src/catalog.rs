//! The catalog: dataset name → dataset, built fresh for every run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::error::{ConfigProblem, LoadVersionProblem};
use crate::file::{VersionGroup, base_name};
use crate::memory::MemoryDataset;
use crate::registry::{DatasetSpec, DatasetTypeRegistry};
use crate::{CatalogError, Dataset, DatasetInfo, LoadType, Unavailable};

const ENTRY_KEYS: &[&str] = &[
    "type",
    "filepath",
    "path",
    "load_args",
    "save_args",
    "versioned",
    "credentials",
    "metadata",
    "dataset",
    "filename_suffix",
    "copy_mode",
    "table_name",
    "sql",
    "url",
    "method",
    "checkpoint",
    // Kedro's `pickle.PickleDataset` and `plotly.PlotlyDataset` keys
    // (checked by their factories in weft-pickle and weft-charts).
    "backend",
    "plotly_args",
];

/// A dataset factory pattern such as `"{name}_csv"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(String),
}

impl Pattern {
    /// Parses a pattern; `None` when the name has no placeholder.
    pub fn parse(text: &str) -> Result<Option<Pattern>, String> {
        if !text.contains('{') {
            return Ok(None);
        }
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("pattern `{text}`: unclosed `{{`"))?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!(
                    "pattern `{text}`: placeholder `{{{name}}}` must be a non-empty word"
                ));
            }
            if matches!(segments.last(), Some(Segment::Placeholder(_))) {
                return Err(format!(
                    "pattern `{text}`: two placeholders must be separated by text"
                ));
            }
            segments.push(Segment::Placeholder(name.to_string()));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        Ok(Some(Pattern {
            text: text.to_string(),
            segments,
        }))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Characters outside placeholders (Kedro's specificity).
    pub fn specificity(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.chars().count(),
                Segment::Placeholder(_) => 0,
            })
            .sum()
    }

    /// Number of placeholders.
    pub fn placeholders(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Placeholder(_)))
            .count()
    }

    /// Placeholder names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Whether this is a catch-all (`"{default}"`).
    pub fn is_catch_all(&self) -> bool {
        self.segments.len() == 1 && self.placeholders() == 1
    }

    /// Matches a whole name; placeholders match non-empty text (shortest first).
    pub fn matches(&self, name: &str) -> Option<BTreeMap<String, String>> {
        fn go(segs: &[Segment], s: &str, out: &mut BTreeMap<String, String>) -> bool {
            match segs.split_first() {
                None => s.is_empty(),
                Some((Segment::Literal(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|r| go(rest, r, out))
                }
                Some((Segment::Placeholder(_), _)) if s.is_empty() => false,
                Some((Segment::Placeholder(p), rest)) => {
                    for (i, _) in s.char_indices().skip(1).chain(std::iter::once((s.len(), ' '))) {
                        if go(rest, &s[i..], out) {
                            out.insert(p.clone(), s[..i].to_string());
                            return true;
                        }
                    }
                    false
                }
            }
        }
        let mut out = BTreeMap::new();
        (!name.is_empty() && go(&self.segments, name, &mut out)).then_some(out)
    }
}

/// Every `{word}` placeholder used in the string values of an entry.
fn placeholders_in(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(open) = rest.find('{') {
                    rest = &rest[open + 1..];
                    if let Some(close) = rest.find('}') {
                        let word = &rest[..close];
                        if !word.is_empty()
                            && word.chars().all(|c| c.is_alphanumeric() || c == '_')
                            && !out.iter().any(|w| w == word)
                        {
                            out.push(word.to_string());
                        }
                    }
                }
            }
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

fn substitute(v: &Value, values: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (k, val) in values {
                out = out.replace(&format!("{{{k}}}"), val);
            }
            Value::String(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), substitute(v, values)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, values)).collect()),
        other => other.clone(),
    }
}

/// A dataset built from a pattern, with the pattern's text.
type Materialized = (Arc<dyn Dataset>, String);

#[derive(Clone)]
struct Entry {
    name: String,
    type_name: String,
    config: serde_json::Map<String, Value>,
    credentials: Option<Value>,
    /// Where the entry is written (file, line), when the parser was told.
    origin: Option<(PathBuf, usize)>,
}

/// A parsed, validated catalog configuration: parse once, then `build` a
/// fresh [`Catalog`] for every run.
#[derive(Clone)]
pub struct CatalogConfig {
    inner: Arc<ConfigInner>,
}

struct ConfigInner {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// Base name → indexes of the explicit `base@fmt` entries.
    by_base: HashMap<String, Vec<usize>>,
    patterns: Vec<(Pattern, Entry)>,
    types: DatasetTypeRegistry,
}

/// Where a run writes its run-scoped outputs (the isolation rule for runs
/// that can overlap): every dataset named in `datasets` that is persisted
/// and not versioned loads and saves under `dir` instead of its configured
/// path. Naming one side of a transcoded pair (`cars@csv`) or its base name
/// (`cars`) scopes every `cars@...` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunScope {
    /// The run's own folder.
    pub dir: PathBuf,
    /// The datasets to scope.
    pub datasets: BTreeSet<String>,
}

/// What a run's catalog needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Relative file paths resolve against this folder.
    pub project_dir: PathBuf,
    /// The version versioned datasets save under (the run id).
    pub save_version: String,
    /// Dataset → version to load. A transcoded dataset is pinned by its base
    /// name (`cars`, for `cars@csv` and `cars@parquet`); a full name works too.
    pub load_versions: BTreeMap<String, String>,
    /// The run's parameters (`parameters` and `params:<key>` entries).
    pub parameters: Value,
    /// Run-scoped outputs, if the run has any (see [`RunScope`]).
    pub run_scope: Option<RunScope>,
}

/// One run's build options with what is derived from them once.
struct BuildState {
    opts: BuildOptions,
    /// Base names of the scoped datasets.
    scope_bases: BTreeSet<String>,
}

impl BuildState {
    fn scope_for(&self, name: &str) -> Option<&std::path::Path> {
        let scope = self.opts.run_scope.as_ref()?;
        self.scope_bases
            .contains(base_name(name))
            .then_some(scope.dir.as_path())
    }

    /// The pinned version of a dataset: by its name, else by its base name,
    /// else by another transcoding's name.
    fn load_version(&self, name: &str) -> Option<&str> {
        let lv = &self.opts.load_versions;
        let base = base_name(name);
        lv.get(name)
            .or_else(|| lv.get(base))
            .or_else(|| {
                lv.iter()
                    .find(|(k, _)| base_name(k) == base && k.contains('@'))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }
}

/// Version groups of one run, by base name.
type Groups = Mutex<HashMap<String, Arc<VersionGroup>>>;

/// A locator: the (file, line) where a key path of the catalog section is
/// written (`["cars"]` for an entry, `["cars", "type"]` for one of its keys).
pub type Locator<'a> = &'a dyn Fn(&[&str]) -> Option<(PathBuf, usize)>;

/// Kedro dataset families implemented only in Python, without a weft type.
const PYTHON_FAMILIES: &[&str] = &[
    "biosequence",
    "dask",
    "databricks",
    "delta",
    "email",
    "geopandas",
    "holoviews",
    "huggingface",
    "ibis",
    "matlab",
    "netcdf",
    "networkx",
    "pillow",
    "polars",
    "redis",
    "snowflake",
    "svmlight",
    "tensorflow",
    "video",
];

/// Why `type_name` (not a registered type) cannot load in weft, when it
/// is a type only Python can load: PySpark, LangChain/Langfuse objects,
/// SQLAlchemy objects, other Python-only Kedro families, or a dotted path
/// to a Python class. `None` for other unknown names (typos).
pub(crate) fn python_only(type_name: &str) -> Option<String> {
    let bare = type_name
        .strip_prefix("kedro_datasets_experimental.")
        .or_else(|| type_name.strip_prefix("kedro_datasets."))
        .unwrap_or(type_name);
    let family = bare.split('.').next().unwrap_or_default().to_ascii_lowercase();
    let t = type_name;
    if family == "spark" {
        return Some(format!(
            "`{t}` is a PySpark dataset: it needs a Spark session in Python, which weft (Rust) does not have; \
             keep the table as Parquet (`pandas.ParquetDataset`, local or on object storage such as `s3://...`) \
             and read that, or run the Spark step as a command node that writes Parquet"
        ));
    }
    if ["langchain", "langfuse", "opik", "openai"].contains(&family.as_str()) {
        return Some(format!(
            "`{t}` is a Python GenAI dataset (LangChain/Langfuse objects: LLM clients, prompt templates, tracers), \
             which weft (Rust) cannot create; run the LLM step as a command node (a Python script) and keep \
             prompts and answers as `text.TextDataset`, `yaml.YAMLDataset` or `json.JSONDataset` files"
        ));
    }
    if bare.to_ascii_lowercase().contains("sqlalchemy") {
        return Some(format!(
            "`{t}` is a Python SQLAlchemy object (an engine or connection), which weft (Rust) cannot hold; \
             use `pandas.SQLTableDataset` or `pandas.SQLQueryDataset` with `credentials: {{con: URL}}` for tables and queries"
        ));
    }
    if PYTHON_FAMILIES.contains(&family.as_str()) {
        return Some(format!(
            "`{t}` is a Kedro dataset implemented in Python that weft (Rust) does not provide; \
             have a command node write a portable format weft reads (CSV, Parquet, JSON), or register \
             a Rust dataset type under that name (`DatasetTypeRegistry`)"
        ));
    }
    if bare.matches('.').count() >= 2 {
        return Some(format!(
            "`{t}` names a Python class (a dotted import path), and weft (Rust) cannot import Python code; \
             register a Rust dataset type under that name (`DatasetTypeRegistry`), or have a command node \
             write a portable format weft reads (CSV, Parquet, JSON)"
        ));
    }
    None
}

fn suggest(types: &DatasetTypeRegistry, name: &str) -> String {
    let lower = name.to_lowercase();
    let close: Vec<&str> = types
        .names()
        .filter(|t| {
            let t = t.to_lowercase();
            weft_pipeline::registry::edit_distance(&t, &lower) <= 3
                || t.rsplit('.')
                    .next()
                    .is_some_and(|c| lower.contains(c) || c.contains(&lower))
        })
        .take(3)
        .collect();
    if close.is_empty() {
        format!(" (known types: {})", types.names().collect::<Vec<_>>().join(", "))
    } else {
        format!(" (did you mean {}?)", backticked(&close))
    }
}

/// Names in backticks, comma-separated: `` `a`, `b` ``.
fn backticked(names: &[impl std::fmt::Display]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a load version is not a plain folder name, if it is not.
fn bad_version(version: &str) -> Option<&'static str> {
    if version.is_empty() {
        Some("a version must not be empty")
    } else if version.contains('/') || version.contains('\\') {
        Some("a version must not contain a path separator (`/` or `\\`)")
    } else if version.contains("..") {
        Some("a version must not contain `..`")
    } else {
        None
    }
}

impl CatalogConfig {
    /// Parses the `catalog` section (and resolves `credentials` references).
    /// Every problem is reported at once, without file locations (see
    /// [`CatalogConfig::parse_located`]).
    pub fn parse(
        catalog: &Value,
        credentials: &Value,
        types: &DatasetTypeRegistry,
    ) -> Result<Self, CatalogError> {
        Self::parse_located(catalog, credentials, types, &|_| None)
    }

    /// Like [`CatalogConfig::parse`], with a locator that says where each
    /// entry (and key) is written, so every problem names its file and line
    /// (`weft_config::KeyLocator` gives one for a project's conf folder).
    pub fn parse_located(
        catalog: &Value,
        credentials: &Value,
        types: &DatasetTypeRegistry,
        locate: Locator<'_>,
    ) -> Result<Self, CatalogError> {
        let mut problems: Vec<ConfigProblem> = Vec::new();
        let problem = |name: &str, key: Option<&str>, message: String| {
            let at = key.and_then(|k| locate(&[name, k])).or_else(|| locate(&[name]));
            ConfigProblem {
                dataset: Some(name.to_string()),
                key: key.map(str::to_string),
                file: at.as_ref().map(|(f, _)| f.clone()),
                line: at.map(|(_, l)| l),
                message,
            }
        };
        let mut entries = Vec::new();
        let mut patterns = Vec::new();
        let map = match catalog {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            other => {
                return Err(CatalogError::Config {
                    problems: vec![ConfigProblem::new(
                        None,
                        None,
                        format!("the catalog must be a map of dataset name -> entry, got {other}"),
                    )],
                });
            }
        };
        for (name, value) in &map {
            if name.starts_with('_') {
                continue;
            }
            let Value::Object(config) = value else {
                problems.push(problem(
                    name,
                    None,
                    format!("`{name}`: an entry must be a map with a `type`, got {value}"),
                ));
                continue;
            };
            // A Python-only type is refused for what it is, not for the
            // Python arguments it takes.
            if let Some(type_name) = config.get("type").and_then(Value::as_str)
                && types.canonical(type_name).is_none()
                && let Some(why) = python_only(type_name)
            {
                problems.push(problem(name, Some("type"), format!("`{name}`: {why}")));
                continue;
            }
            for key in config.keys() {
                if !ENTRY_KEYS.contains(&key.as_str()) {
                    problems.push(problem(
                        name,
                        Some(key),
                        format!(
                            "`{name}`: unknown key `{key}` (allowed: {})",
                            ENTRY_KEYS.join(", ")
                        ),
                    ));
                }
            }
            let Some(type_name) = config.get("type").and_then(Value::as_str) else {
                problems.push(problem(name, None, format!("`{name}`: missing `type`")));
                continue;
            };
            let Some(canonical) = types.canonical(type_name) else {
                problems.push(problem(
                    name,
                    Some("type"),
                    format!(
                        "`{name}`: unknown dataset type `{type_name}`{}",
                        suggest(types, type_name)
                    ),
                ));
                continue;
            };
            let creds = match config.get("credentials") {
                None | Some(Value::Null) => None,
                Some(Value::String(key)) => match credentials.get(key) {
                    Some(c) => Some(c.clone()),
                    None => {
                        problems.push(problem(
                            name,
                            Some("credentials"),
                            format!("`{name}`: credentials `{key}` are not defined in the credentials files"),
                        ));
                        continue;
                    }
                },
                Some(inline @ Value::Object(_)) => Some(inline.clone()),
                Some(other) => {
                    problems.push(problem(
                        name,
                        Some("credentials"),
                        format!(
                            "`{name}`: `credentials` must name an entry of the credentials files, got {other}"
                        ),
                    ));
                    continue;
                }
            };
            let entry = Entry {
                name: name.clone(),
                type_name: canonical.to_string(),
                config: config.clone(),
                credentials: creds,
                origin: locate(&[name]),
            };
            // Dry-run the factory so bad entries fail now, all together.
            let dry_run = |config: &serde_json::Map<String, Value>| {
                let spec = DatasetSpec {
                    name,
                    type_name: canonical,
                    config,
                    project_dir: std::path::Path::new("."),
                    save_version: "validation",
                    load_version: None,
                    credentials: entry.credentials.as_ref(),
                    run_scope: None,
                    version_group: None,
                    storage: types.storage(),
                };
                match types.get(canonical).map(|f| f(&spec)) {
                    Some(Err(e)) => Err(problem(name, None, format!("`{name}`: {e}"))),
                    _ => Ok(()),
                }
            };
            match Pattern::parse(name) {
                Err(e) => problems.push(problem(name, None, e)),
                Ok(Some(p)) => {
                    let mut ok = true;
                    for used in placeholders_in(&Value::Object(config.clone())) {
                        if !p.names().any(|n| n == used) {
                            ok = false;
                            problems.push(problem(
                                name,
                                None,
                                format!(
                                    "`{name}`: placeholder `{{{used}}}` is used in the entry but not in the pattern"
                                ),
                            ));
                        }
                    }
                    // Validate with every placeholder filled in.
                    let sample: BTreeMap<String, String> =
                        p.names().map(|n| (n.to_string(), n.to_string())).collect();
                    if let Value::Object(filled) = substitute(&Value::Object(config.clone()), &sample)
                        && let Err(e) = dry_run(&filled)
                    {
                        ok = false;
                        problems.push(e);
                    }
                    if ok {
                        patterns.push((p, entry));
                    }
                }
                Ok(None) => match dry_run(config) {
                    Err(e) => problems.push(e),
                    Ok(()) => entries.push(entry),
                },
            }
        }
        let catch_all: Vec<&str> = patterns
            .iter()
            .filter(|(p, _)| p.specificity() == 0)
            .map(|(p, _)| p.as_str())
            .collect();
        if catch_all.len() > 1 {
            let mut p = problem(
                catch_all[1],
                None,
                format!(
                    "only one catch-all pattern is allowed, found {}",
                    backticked(&catch_all)
                ),
            );
            p.dataset = None;
            problems.push(p);
        }
        if !problems.is_empty() {
            return Err(CatalogError::Config { problems });
        }
        // Kedro's order: more literal characters, then more placeholders, then by name.
        patterns.sort_by(|(a, _), (b, _)| {
            b.specificity()
                .cmp(&a.specificity())
                .then(b.placeholders().cmp(&a.placeholders()))
                .then(a.as_str().cmp(b.as_str()))
        });
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.name.contains('@') {
                by_base.entry(base_name(&e.name).to_string()).or_default().push(i);
            }
        }
        Ok(CatalogConfig {
            inner: Arc::new(ConfigInner {
                entries,
                by_name,
                by_base,
                patterns,
                types: types.clone(),
            }),
        })
    }

    /// Pattern texts in matching order (most specific first, catch-all last).
    pub fn patterns(&self) -> Vec<&str> {
        self.inner.patterns.iter().map(|(p, _)| p.as_str()).collect()
    }

    /// The pattern a name would materialize from, if any.
    pub fn matching_pattern(&self, name: &str) -> Option<&str> {
        self.inner
            .patterns
            .iter()
            .find(|(p, _)| p.matches(name).is_some())
            .map(|(p, _)| p.as_str())
    }

    /// The entry for a name and its configuration (placeholders filled in
    /// for pattern entries), with the pattern text; `None` when undeclared.
    fn entry_for(&self, name: &str) -> Option<(Entry, serde_json::Map<String, Value>, Option<String>)> {
        if let Some(&i) = self.inner.by_name.get(name) {
            let e = &self.inner.entries[i];
            return Some((e.clone(), e.config.clone(), None));
        }
        let (pattern, entry) = self
            .inner
            .patterns
            .iter()
            .find(|(p, _)| p.matches(name).is_some())?;
        let values = pattern.matches(name)?;
        let Value::Object(config) = substitute(&Value::Object(entry.config.clone()), &values) else {
            return None;
        };
        let concrete = Entry {
            name: name.to_string(),
            ..entry.clone()
        };
        Some((concrete, config, Some(pattern.as_str().to_string())))
    }

    /// The dataset a name would be, built with neither scope nor versions
    /// (for questions about the configuration).
    fn probe(&self, name: &str) -> Option<Arc<dyn Dataset>> {
        if name == "parameters" || name.starts_with("params:") {
            return None;
        }
        let (entry, config, _) = self.entry_for(name)?;
        let factory = self.inner.types.get(&entry.type_name)?;
        factory(&DatasetSpec {
            name,
            type_name: &entry.type_name,
            config: &config,
            project_dir: std::path::Path::new("."),
            save_version: "probe",
            load_version: None,
            credentials: entry.credentials.as_ref(),
            run_scope: None,
            version_group: None,
            storage: self.inner.types.storage(),
        })
        .ok()
    }

    /// Whether `name` (an entry, or a name a pattern matches) is persisted
    /// and not versioned, in a file or folder a [`RunScope`] can move: the
    /// datasets that concurrent runs would share. `false` for memory,
    /// versioned, `params:` and undeclared names. Builds nothing on disk.
    pub fn is_shared_file(&self, name: &str) -> bool {
        self.probe(name)
            .is_some_and(|ds| !ds.is_memory() && !ds.describe().versioned && ds.path().is_some())
    }

    /// Whether `name` is persisted (not memory, not a parameter), versioned
    /// or not, file-backed or not (custom types without a path cannot be
    /// run-scoped: [`CatalogConfig::is_shared_file`] is `false` for them).
    pub fn is_persisted(&self, name: &str) -> bool {
        self.probe(name).is_some_and(|ds| !ds.is_memory())
    }

    /// Whether an entry's configuration says `versioned: true`.
    fn entry_versioned(config: &serde_json::Map<String, Value>) -> bool {
        config.get("versioned") == Some(&Value::Bool(true))
    }

    /// Every name of the logical dataset `base` the configuration knows:
    /// `base` itself and its transcodings `base@fmt` (explicit entries, and
    /// names that patterns ending in `@fmt` match).
    fn transcodings(&self, base: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |n: String| {
            if !out.contains(&n) {
                out.push(n);
            }
        };
        if self.entry_for(base).is_some() {
            push(base.to_string());
        }
        for &i in self.inner.by_base.get(base).into_iter().flatten() {
            push(self.inner.entries[i].name.clone());
        }
        for (p, _) in &self.inner.patterns {
            if let Some(Segment::Literal(last)) = p.segments.last()
                && let Some(at) = last.rfind('@')
            {
                let candidate = format!("{base}{}", &last[at..]);
                if p.matches(&candidate).is_some() && self.entry_for(&candidate).is_some() {
                    push(candidate);
                }
            }
        }
        out
    }

    /// Checks `load_versions` against the configuration: plain folder names,
    /// known datasets, versioned ones, one version per logical dataset.
    fn check_load_versions(&self, load_versions: &BTreeMap<String, String>) -> Vec<LoadVersionProblem> {
        let mut problems = Vec::new();
        let refuse = |name: &str, version: &str, reason: String| LoadVersionProblem {
            dataset: name.to_string(),
            version: version.to_string(),
            reason,
        };
        let mut by_base: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (name, version) in load_versions {
            if let Some(why) = bad_version(version) {
                problems.push(refuse(name, version, why.to_string()));
            }
            let names = if name.contains('@') {
                self.entry_for(name)
                    .map(|_| vec![name.clone()])
                    .unwrap_or_default()
            } else {
                self.transcodings(name)
            };
            if names.is_empty() {
                problems.push(refuse(
                    name,
                    version,
                    "the catalog has no such dataset (no entry, no matching pattern)".to_string(),
                ));
                continue;
            }
            let versioned = names.iter().any(|n| {
                self.entry_for(n)
                    .is_some_and(|(_, config, _)| Self::entry_versioned(&config))
            });
            if !versioned {
                problems.push(refuse(
                    name,
                    version,
                    "the dataset is not versioned (its entry does not say `versioned: true`)".to_string(),
                ));
                continue;
            }
            by_base.entry(base_name(name)).or_default().push((name, version));
        }
        for (base, pins) in by_base {
            if pins.iter().any(|(_, v)| *v != pins[0].1) {
                for (name, version) in &pins {
                    problems.push(refuse(
                        name,
                        version,
                        format!(
                            "conflicting versions for the transcodings of `{base}` (they are one dataset): {}",
                            pins.iter()
                                .map(|(n, v)| format!("`{n}` = `{v}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        problems
    }

    /// The version group of the logical dataset `base` in one run.
    fn group_for(&self, base: &str, state: &BuildState, groups: &Groups) -> Arc<VersionGroup> {
        if let Some(g) = groups.lock().unwrap_or_else(PoisonError::into_inner).get(base) {
            return Arc::clone(g);
        }
        let sides: Vec<(PathBuf, Arc<dyn crate::storage::Storage>)> = self
            .transcodings(base)
            .iter()
            .filter_map(|n| {
                let (entry, config, _) = self.entry_for(n)?;
                if !Self::entry_versioned(&config) {
                    return None;
                }
                let factory = self.inner.types.get(&entry.type_name)?;
                factory(&DatasetSpec {
                    name: n,
                    type_name: &entry.type_name,
                    config: &config,
                    project_dir: &state.opts.project_dir,
                    save_version: &state.opts.save_version,
                    load_version: None,
                    credentials: entry.credentials.as_ref(),
                    run_scope: None,
                    version_group: None,
                    storage: self.inner.types.storage(),
                })
                .ok()
                .and_then(|ds| {
                    let storage = ds.storage().unwrap_or_else(crate::storage::LocalStorage::shared);
                    Some((ds.path()?, storage))
                })
            })
            .collect();
        let group = VersionGroup::with_sides(base, state.load_version(base).map(str::to_string), sides);
        Arc::clone(
            groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(base.to_string())
                .or_insert(group),
        )
    }

    /// Builds a fresh catalog for one run. `load_versions` are checked
    /// first: every problem is reported at once in
    /// [`CatalogError::LoadVersions`].
    pub fn build(&self, opts: &BuildOptions) -> Result<Catalog, CatalogError> {
        let problems = self.check_load_versions(&opts.load_versions);
        if !problems.is_empty() {
            return Err(CatalogError::LoadVersions { problems });
        }
        let state = Arc::new(BuildState {
            scope_bases: opts
                .run_scope
                .iter()
                .flat_map(|s| s.datasets.iter().map(|d| base_name(d).to_string()))
                .collect(),
            opts: opts.clone(),
        });
        let groups: Groups = Mutex::new(HashMap::new());
        let mut built = HashMap::with_capacity(self.inner.entries.len() + 8);
        for e in &self.inner.entries {
            built.insert(e.name.clone(), self.instantiate(e, &e.config, &state, &groups)?);
        }
        let mut catalog = Catalog {
            datasets: RwLock::new(built),
            patterns: Some((self.clone(), state)),
            origins: RwLock::new(HashMap::new()),
            groups,
        };
        if !opts.parameters.is_null() {
            catalog.add_parameters(&opts.parameters);
        }
        Ok(catalog)
    }

    fn instantiate(
        &self,
        entry: &Entry,
        config: &serde_json::Map<String, Value>,
        state: &BuildState,
        groups: &Groups,
    ) -> Result<Arc<dyn Dataset>, CatalogError> {
        let factory = self
            .inner
            .types
            .get(&entry.type_name)
            .ok_or_else(|| CatalogError::Config {
                problems: vec![ConfigProblem::new(
                    Some(&entry.name),
                    Some("type"),
                    format!("`{}`: unknown dataset type `{}`", entry.name, entry.type_name),
                )],
            })?;
        let version_group =
            Self::entry_versioned(config).then(|| self.group_for(base_name(&entry.name), state, groups));
        let spec = DatasetSpec {
            name: &entry.name,
            type_name: &entry.type_name,
            config,
            project_dir: &state.opts.project_dir,
            save_version: &state.opts.save_version,
            load_version: state.load_version(&entry.name),
            credentials: entry.credentials.as_ref(),
            run_scope: state.scope_for(&entry.name),
            version_group,
            storage: self.inner.types.storage(),
        };
        factory(&spec).map_err(|e| CatalogError::Config {
            problems: vec![ConfigProblem {
                dataset: Some(entry.name.clone()),
                key: None,
                file: entry.origin.as_ref().map(|(f, _)| f.clone()),
                line: entry.origin.as_ref().map(|(_, l)| *l),
                message: format!("`{}`: {e}", entry.name),
            }],
        })
    }

    fn materialize(
        &self,
        name: &str,
        state: &BuildState,
        groups: &Groups,
    ) -> Option<Result<Materialized, CatalogError>> {
        if self.inner.by_name.contains_key(name) {
            return None;
        }
        let (entry, config, pattern) = self.entry_for(name)?;
        let pattern = pattern?;
        Some(
            self.instantiate(&entry, &config, state, groups)
                .map(|d| (d, pattern)),
        )
    }
}

/// Name → dataset for one run. Shared by the run's threads; never shared
/// between runs (build a new one from [`CatalogConfig`] each time).
pub struct Catalog {
    datasets: RwLock<HashMap<String, Arc<dyn Dataset>>>,
    patterns: Option<(CatalogConfig, Arc<BuildState>)>,
    origins: RwLock<HashMap<String, String>>,
    groups: Groups,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

fn add_params(catalog: &mut HashMap<String, Arc<dyn Dataset>>, prefix: &str, v: &Value) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let name = format!("params:{key}");
            catalog.insert(
                name.clone(),
                Arc::new(MemoryDataset::parameters(name, child.clone())),
            );
            add_params(catalog, &key, child);
        }
    }
}

impl Catalog {
    /// An empty, memory-only catalog.
    pub fn new() -> Self {
        Catalog {
            datasets: RwLock::new(HashMap::new()),
            patterns: None,
            origins: RwLock::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Adds (or replaces) a dataset.
    pub fn add(&mut self, name: impl Into<String>, dataset: Arc<dyn Dataset>) {
        self.datasets
            .get_mut()
            .expect("catalog lock")
            .insert(name.into(), dataset);
    }

    /// Adds a memory dataset holding `data`.
    pub fn add_data(&mut self, name: impl Into<String>, data: Data) {
        let name = name.into();
        let ds = Arc::new(MemoryDataset::with_data(name.clone(), data));
        self.add(name, ds);
    }

    /// Adds `parameters` (the whole tree) and `params:<dotted.key>` for every
    /// nested key, as Kedro does.
    pub fn add_parameters(&mut self, params: &Value) {
        let map = self.datasets.get_mut().expect("catalog lock");
        map.insert(
            "parameters".into(),
            Arc::new(MemoryDataset::parameters("parameters", params.clone())),
        );
        add_params(map, "", params);
    }

    /// The dataset for `name`, materializing it from a pattern if needed.
    /// `None` means "not declared": a memory dataset will be used.
    fn resolve(&self, name: &str) -> Result<Option<Arc<dyn Dataset>>, CatalogError> {
        if let Some(ds) = self.datasets.read().expect("catalog lock").get(name) {
            return Ok(Some(Arc::clone(ds)));
        }
        let Some((config, state)) = &self.patterns else {
            return Ok(None);
        };
        match config.materialize(name, state, &self.groups) {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok((ds, pattern))) => {
                let mut map = self.datasets.write().expect("catalog lock");
                let ds = Arc::clone(map.entry(name.to_string()).or_insert(ds));
                self.origins
                    .write()
                    .expect("catalog lock")
                    .insert(name.to_string(), pattern);
                Ok(Some(ds))
            }
        }
    }

    fn resolve_or_memory(&self, name: &str) -> Result<Arc<dyn Dataset>, CatalogError> {
        if let Some(ds) = self.resolve(name)? {
            return Ok(ds);
        }
        let mut map = self.datasets.write().expect("catalog lock");
        Ok(Arc::clone(
            map.entry(name.to_string())
                .or_insert_with(|| Arc::new(MemoryDataset::new(name))),
        ))
    }

    /// Loads a dataset; if it yields another type than `request`, converts
    /// it (through serde) or reports both types.
    pub fn load(&self, name: &str, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let ds = self.resolve(name)?.ok_or_else(|| CatalogError::NotSaved {
            dataset: name.to_string(),
        })?;
        let data = ds.load(request)?;
        match request {
            Some(ty) if data.type_id() != ty.id() => {
                data.convert_to(ty).map_err(|e| CatalogError::Conversion {
                    dataset: name.to_string(),
                    from: data.type_name().to_string(),
                    to: ty.name().to_string(),
                    message: e.to_string(),
                })
            }
            _ => Ok(data),
        }
    }

    /// Saves to a dataset (an undeclared name becomes a memory dataset).
    pub fn save(&self, name: &str, data: Data) -> Result<(), CatalogError> {
        self.resolve_or_memory(name)?.save(&data)
    }

    /// Whether the dataset has data to load.
    pub fn exists(&self, name: &str) -> Result<bool, CatalogError> {
        match self.resolve(name)? {
            Some(ds) => ds.exists(),
            None => Ok(false),
        }
    }

    /// Drops in-memory data of a dataset.
    pub fn release(&self, name: &str) {
        if let Some(ds) = self.datasets.read().expect("catalog lock").get(name) {
            ds.release();
        }
    }

    /// Whether the name is declared, added, or matches a pattern.
    pub fn contains(&self, name: &str) -> bool {
        if self.datasets.read().expect("catalog lock").contains_key(name) {
            return true;
        }
        self.patterns
            .as_ref()
            .is_some_and(|(c, _)| c.matching_pattern(name).is_some())
    }

    /// Whether the data lives in memory (undeclared names do).
    pub fn is_memory(&self, name: &str) -> bool {
        match self.resolve(name) {
            Ok(Some(ds)) => ds.is_memory(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// What loading the dataset yields.
    pub fn load_type(&self, name: &str) -> LoadType {
        match self.resolve(name) {
            Ok(Some(ds)) => ds.load_type(),
            _ => LoadType::Any,
        }
    }

    /// How one dataset would be described (materializing it from a pattern
    /// if needed); `None` for undeclared names (memory by default).
    pub fn describe(&self, name: &str) -> Option<DatasetInfo> {
        let ds = self.resolve(name).ok()??;
        let mut info = ds.describe();
        info.name = name.to_string();
        info.pattern = self.origins.read().expect("catalog lock").get(name).cloned();
        Some(info)
    }

    /// Where a file dataset's data lives (its storage: the local disk or
    /// an object store); `None` for memory datasets and undeclared names.
    pub fn storage_of(&self, name: &str) -> Option<Arc<dyn crate::storage::Storage>> {
        self.resolve(name).ok()??.storage()
    }

    /// The dataset behind `name` (materializing it from a pattern if
    /// needed); `None` for undeclared names (memory by default). For code
    /// that works on a dataset's file rather than its value (command nodes).
    pub fn dataset(&self, name: &str) -> Result<Option<Arc<dyn Dataset>>, CatalogError> {
        self.resolve(name)
    }

    /// Whether `name` is an incremental dataset (one a node may confirm).
    pub fn is_incremental(&self, name: &str) -> bool {
        matches!(self.resolve(name), Ok(Some(ds)) if ds.is_incremental())
    }

    /// Advances the checkpoint of the incremental dataset `name` to the
    /// newest partition this run loaded (a compare-and-swap: see
    /// [`crate::IncrementalDataset`]). An undeclared name or a dataset
    /// without a checkpoint is [`CatalogError::NotIncremental`].
    pub fn confirm(&self, name: &str) -> Result<crate::Confirmation, CatalogError> {
        match self.resolve(name)? {
            Some(ds) => ds.confirm().map_err(|e| match e {
                CatalogError::NotIncremental { type_name, .. } => CatalogError::NotIncremental {
                    dataset: name.to_string(),
                    type_name,
                },
                other => other,
            }),
            None => Err(CatalogError::NotIncremental {
                dataset: name.to_string(),
                type_name: "MemoryDataset".into(),
            }),
        }
    }

    /// Every dataset built so far (declared, added, materialized), by name.
    pub fn list(&self) -> Vec<DatasetInfo> {
        let origins = self.origins.read().expect("catalog lock");
        let mut out: Vec<DatasetInfo> = self
            .datasets
            .read()
            .expect("catalog lock")
            .iter()
            .filter(|(name, _)| !name.starts_with("params:") && name.as_str() != "parameters")
            .map(|(name, ds)| {
                let mut info = ds.describe();
                info.name = name.clone();
                info.pattern = origins.get(name).cloned();
                info
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Dataset → version saved in this run, keyed by base name for
    /// transcoded datasets (`cars` for `cars@csv`), as `load_versions` are.
    pub fn saved_versions(&self) -> BTreeMap<String, String> {
        self.datasets
            .read()
            .expect("catalog lock")
            .iter()
            .filter_map(|(name, ds)| ds.saved_version().map(|v| (base_name(name).to_string(), v)))
            .collect()
    }

    /// Dataset → version loaded in this run (versioned datasets only, the
    /// last load of each), keyed by base name like [`Catalog::saved_versions`].
    pub fn loaded_versions(&self) -> BTreeMap<String, String> {
        self.datasets
            .read()
            .expect("catalog lock")
            .iter()
            .filter_map(|(name, ds)| ds.loaded_version().map(|v| (base_name(name).to_string(), v)))
            .collect()
    }

    /// Dataset → the file or folder it really reads and writes, for every
    /// run-scoped dataset (those of [`BuildOptions::run_scope`] that are
    /// persisted and not versioned, including pattern and transcoded ones).
    pub fn scoped_paths(&self) -> BTreeMap<String, PathBuf> {
        let Some((config, state)) = &self.patterns else {
            return BTreeMap::new();
        };
        let Some(scope) = &state.opts.run_scope else {
            return BTreeMap::new();
        };
        for name in &scope.datasets {
            let names = if name.contains('@') {
                config
                    .transcodings(base_name(name))
                    .into_iter()
                    .chain([name.clone()])
                    .collect()
            } else {
                config.transcodings(name)
            };
            for n in names {
                let _ = self.resolve(&n);
            }
        }
        self.datasets
            .read()
            .expect("catalog lock")
            .iter()
            .filter(|(name, ds)| {
                state.scope_for(name).is_some() && !ds.is_memory() && !ds.describe().versioned
            })
            .filter_map(|(name, ds)| ds.path().map(|p| (name.clone(), p)))
            .collect()
    }

    /// The datasets among `names` that have nothing to load now: a file
    /// (or versioned folder, or pinned version) that does not exist, a
    /// memory dataset that holds no data, a name the catalog does not know.
    /// Cheap: about one `stat` per dataset, nothing is read.
    pub fn check_available(&self, names: &[&str]) -> Vec<Unavailable> {
        names
            .iter()
            .filter_map(|&name| match self.resolve(name) {
                Ok(Some(ds)) => ds.unavailable().map(|mut u| {
                    u.dataset = name.to_string();
                    u
                }),
                Ok(None) => Some(Unavailable {
                    dataset: name.to_string(),
                    path: None,
                    reason: "not in the catalog, so a memory dataset, and nothing has saved it".to_string(),
                }),
                Err(e) => Some(Unavailable {
                    dataset: name.to_string(),
                    path: None,
                    reason: e.to_string(),
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::python_only;

    #[test]
    fn python_only_types_say_python_and_what_to_use_instead() {
        for (type_name, instead) in [
            ("spark.SparkDataset", "pandas.ParquetDataset"),
            ("kedro_datasets.spark.DeltaTableDataset", "pandas.ParquetDataset"),
            ("langchain.ChatOpenAIDataset", "command node"),
            (
                "kedro_datasets_experimental.langfuse.LangfuseTraceDataset",
                "command node",
            ),
            (
                "my_project.datasets.sqlalchemy_dataset.SQLAlchemyEngineDataset",
                "pandas.SQLTableDataset",
            ),
            ("tensorflow.TensorFlowModelDataset", "command node"),
            ("my_project.io.CustomDataset", "DatasetTypeRegistry"),
        ] {
            let why = python_only(type_name).unwrap_or_else(|| panic!("{type_name} not Python-only"));
            assert!(
                why.contains("Python") && why.contains(instead),
                "{type_name}: {why}"
            );
            assert!(why.contains(type_name), "{type_name}: {why}");
        }
        // Typos of weft's own types get the "did you mean" answer instead.
        for typo in ["pandas.CVSDataset", "CSVDataset", "json.JSONDatset"] {
            assert_eq!(python_only(typo), None, "{typo}");
        }
    }
}
