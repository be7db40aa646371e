//! The catalog: dataset name → dataset, built fresh for every run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::memory::MemoryDataset;
use crate::registry::{DatasetSpec, DatasetTypeRegistry};
use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

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
}

/// A parsed, validated catalog configuration: parse once, then `build` a
/// fresh [`Catalog`] for every run.
#[derive(Clone)]
pub struct CatalogConfig {
    inner: Arc<ConfigInner>,
}

struct ConfigInner {
    entries: Vec<Entry>,
    patterns: Vec<(Pattern, Entry)>,
    types: DatasetTypeRegistry,
}

/// What a run's catalog needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Relative file paths resolve against this folder.
    pub project_dir: PathBuf,
    /// The version versioned datasets save under (the run id).
    pub save_version: String,
    /// Dataset → version to load.
    pub load_versions: BTreeMap<String, String>,
    /// The run's parameters (`parameters` and `params:<key>` entries).
    pub parameters: Value,
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
        format!(
            " (did you mean {}?)",
            close
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl CatalogConfig {
    /// Parses the `catalog` section (and resolves `credentials` references).
    /// Every problem is reported at once.
    pub fn parse(
        catalog: &Value,
        credentials: &Value,
        types: &DatasetTypeRegistry,
    ) -> Result<Self, CatalogError> {
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        let mut patterns = Vec::new();
        let map = match catalog {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            other => {
                return Err(CatalogError::Config {
                    problems: vec![format!(
                        "the catalog must be a map of dataset name -> entry, got {other}"
                    )],
                });
            }
        };
        for (name, value) in &map {
            if name.starts_with('_') {
                continue;
            }
            let Value::Object(config) = value else {
                problems.push(format!(
                    "`{name}`: an entry must be a map with a `type`, got {value}"
                ));
                continue;
            };
            for key in config.keys() {
                if !ENTRY_KEYS.contains(&key.as_str()) {
                    problems.push(format!(
                        "`{name}`: unknown key `{key}` (allowed: {})",
                        ENTRY_KEYS.join(", ")
                    ));
                }
            }
            let Some(type_name) = config.get("type").and_then(Value::as_str) else {
                problems.push(format!("`{name}`: missing `type`"));
                continue;
            };
            let Some(canonical) = types.canonical(type_name) else {
                problems.push(format!(
                    "`{name}`: unknown dataset type `{type_name}`{}",
                    suggest(types, type_name)
                ));
                continue;
            };
            let creds = match config.get("credentials") {
                None | Some(Value::Null) => None,
                Some(Value::String(key)) => match credentials.get(key) {
                    Some(c) => Some(c.clone()),
                    None => {
                        problems.push(format!(
                            "`{name}`: credentials `{key}` are not defined in the credentials files"
                        ));
                        continue;
                    }
                },
                Some(inline @ Value::Object(_)) => Some(inline.clone()),
                Some(other) => {
                    problems.push(format!(
                        "`{name}`: `credentials` must name an entry of the credentials files, got {other}"
                    ));
                    continue;
                }
            };
            let entry = Entry {
                name: name.clone(),
                type_name: canonical.to_string(),
                config: config.clone(),
                credentials: creds,
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
                };
                match types.get(canonical).map(|f| f(&spec)) {
                    Some(Err(e)) => Err(format!("`{name}`: {e}")),
                    _ => Ok(()),
                }
            };
            match Pattern::parse(name) {
                Err(e) => problems.push(e),
                Ok(Some(p)) => {
                    let mut ok = true;
                    for used in placeholders_in(&Value::Object(config.clone())) {
                        if !p.names().any(|n| n == used) {
                            ok = false;
                            problems.push(format!(
                                "`{name}`: placeholder `{{{used}}}` is used in the entry but not in the pattern"
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
            problems.push(format!(
                "only one catch-all pattern is allowed, found {}",
                catch_all
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
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
        Ok(CatalogConfig {
            inner: Arc::new(ConfigInner {
                entries,
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

    /// Builds a fresh catalog for one run.
    pub fn build(&self, opts: &BuildOptions) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            datasets: RwLock::new(HashMap::with_capacity(self.inner.entries.len() + 8)),
            patterns: Some((self.clone(), Arc::new(opts.clone()))),
            origins: RwLock::new(HashMap::new()),
        };
        let mut built = HashMap::with_capacity(self.inner.entries.len());
        for e in &self.inner.entries {
            built.insert(e.name.clone(), self.instantiate(e, &e.config, opts)?);
        }
        *catalog.datasets.get_mut().expect("fresh lock") = built;
        if !opts.parameters.is_null() {
            catalog.add_parameters(&opts.parameters);
        }
        Ok(catalog)
    }

    fn instantiate(
        &self,
        entry: &Entry,
        config: &serde_json::Map<String, Value>,
        opts: &BuildOptions,
    ) -> Result<Arc<dyn Dataset>, CatalogError> {
        let factory = self
            .inner
            .types
            .get(&entry.type_name)
            .expect("types were checked at parse time");
        let spec = DatasetSpec {
            name: &entry.name,
            type_name: &entry.type_name,
            config,
            project_dir: &opts.project_dir,
            save_version: &opts.save_version,
            load_version: opts.load_versions.get(&entry.name).map(String::as_str),
            credentials: entry.credentials.as_ref(),
        };
        factory(&spec).map_err(|e| CatalogError::Config {
            problems: vec![format!("`{}`: {e}", entry.name)],
        })
    }

    fn materialize(&self, name: &str, opts: &BuildOptions) -> Option<Result<Materialized, CatalogError>> {
        let (pattern, entry) = self
            .inner
            .patterns
            .iter()
            .find(|(p, _)| p.matches(name).is_some())?;
        let values = pattern.matches(name)?;
        let Value::Object(config) = substitute(&Value::Object(entry.config.clone()), &values) else {
            unreachable!("substituting an object yields an object")
        };
        let concrete = Entry {
            name: name.to_string(),
            ..entry.clone()
        };
        Some(
            self.instantiate(&concrete, &config, opts)
                .map(|d| (d, pattern.as_str().to_string())),
        )
    }
}

/// Name → dataset for one run. Shared by the run's threads; never shared
/// between runs (build a new one from [`CatalogConfig`] each time).
pub struct Catalog {
    datasets: RwLock<HashMap<String, Arc<dyn Dataset>>>,
    patterns: Option<(CatalogConfig, Arc<BuildOptions>)>,
    origins: RwLock<HashMap<String, String>>,
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
        let Some((config, opts)) = &self.patterns else {
            return Ok(None);
        };
        match config.materialize(name, opts) {
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

    /// Dataset → version saved in this run.
    pub fn saved_versions(&self) -> BTreeMap<String, String> {
        self.datasets
            .read()
            .expect("catalog lock")
            .iter()
            .filter_map(|(name, ds)| ds.saved_version().map(|v| (name.clone(), v)))
            .collect()
    }
}
