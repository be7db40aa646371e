//! The immutable pipeline: a DAG of nodes wired by dataset names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::node::Node;
use crate::registry::edit_distance;
use crate::transcode;

/// An immutable set of nodes, in deterministic topological order (layer by
/// layer, sorted by name within a layer). Cloning is cheap (shared).
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    layers: Vec<Vec<usize>>,
    inputs: BTreeSet<String>,
    outputs: BTreeSet<String>,
}

/// Node filters, as `weft run` flags name them. Each given filter is applied
/// to the original pipeline and the results are intersected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineFilter {
    /// Nodes with any of these tags.
    pub tags: Vec<String>,
    /// Exactly these nodes.
    pub node_names: Vec<String>,
    /// These nodes and everything downstream.
    pub from_nodes: Vec<String>,
    /// These nodes and everything upstream.
    pub to_nodes: Vec<String>,
    /// Nodes depending (transitively) on these datasets.
    pub from_inputs: Vec<String>,
    /// Nodes needed to produce these datasets.
    pub to_outputs: Vec<String>,
    /// Nodes in these namespaces (or nested below them).
    pub node_namespaces: Vec<String>,
}

impl PipelineFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.node_names.is_empty()
            && self.from_nodes.is_empty()
            && self.to_nodes.is_empty()
            && self.from_inputs.is_empty()
            && self.to_outputs.is_empty()
            && self.node_namespaces.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |name: &str, v: &Vec<String>| {
            if !v.is_empty() {
                parts.push(format!("{name}={}", v.join(",")));
            }
        };
        add("tags", &self.tags);
        add("node_names", &self.node_names);
        add("from_nodes", &self.from_nodes);
        add("to_nodes", &self.to_nodes);
        add("from_inputs", &self.from_inputs);
        add("to_outputs", &self.to_outputs);
        add("node_namespaces", &self.node_namespaces);
        parts.join("; ")
    }
}

/// How [`Pipeline::namespaced`] renames a pipeline (Kedro's `pipeline()`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceOptions {
    /// Prefix for node names, datasets and parameters.
    pub namespace: Option<String>,
    /// Free inputs → names used verbatim instead of prefixing.
    pub inputs: BTreeMap<String, String>,
    /// Outputs → names used verbatim instead of prefixing.
    pub outputs: BTreeMap<String, String>,
    /// Parameters (`x` or `params:x`) → names used verbatim.
    pub parameters: BTreeMap<String, String>,
    /// Tags added to every node.
    pub tags: Vec<String>,
}

fn is_param(name: &str) -> bool {
    name == "parameters" || name.starts_with("params:")
}

impl Pipeline {
    /// Validates the nodes and builds the pipeline. Reports every problem at
    /// once: duplicate node names, a dataset produced by two nodes
    /// (transcoding-aware), a dataset used both with and without `@`, a name
    /// with two `@`, cycles.
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Pipeline, PipelineError> {
        let nodes: Vec<Node> = nodes.into_iter().collect();
        let mut problems = Vec::new();

        let mut seen = HashSet::new();
        let mut reported = HashSet::new();
        for n in &nodes {
            if !seen.insert(n.name()) && reported.insert(n.name()) {
                problems.push(format!("node name `{}` is used by more than one node", n.name()));
            }
        }

        // Transcoding usage per logical name.
        let mut plain: BTreeSet<&str> = BTreeSet::new();
        let mut transcoded: BTreeSet<&str> = BTreeSet::new();
        for n in &nodes {
            for d in n.inputs().iter().chain(n.outputs()) {
                if d.matches(transcode::SEPARATOR).count() > 1 {
                    problems.push(format!(
                        "dataset `{d}` of node `{}` has more than one `@`; expected `name@format`",
                        n.name()
                    ));
                }
                match transcode::split(d) {
                    (base, Some(_)) => {
                        transcoded.insert(base);
                    }
                    (base, None) => {
                        plain.insert(base);
                    }
                }
            }
        }
        for base in plain.intersection(&transcoded) {
            problems.push(format!(
                "dataset `{base}` is used both with and without transcoding (`{base}` and `{base}@...`); use `{base}@<format>` everywhere"
            ));
        }

        // Producers by logical name.
        let mut producer: HashMap<&str, usize> = HashMap::new();
        let mut conflicts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for out in n.outputs() {
                let base = transcode::strip(out);
                if let Some(&other) = producer.get(base) {
                    if other != i {
                        let set = conflicts.entry(base).or_default();
                        set.insert(nodes[other].name());
                        set.insert(n.name());
                    }
                } else {
                    producer.insert(base, i);
                }
            }
        }
        for (base, who) in &conflicts {
            problems.push(format!(
                "dataset `{base}` is an output of more than one node: {}",
                who.iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !problems.is_empty() {
            return Err(PipelineError::InvalidPipeline { problems });
        }

        // Edges (deduplicated) and Kahn's algorithm, layer by layer.
        let n = nodes.len();
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in nodes.iter().enumerate() {
            for input in node.inputs() {
                if let Some(&p) = producer.get(transcode::strip(input))
                    && p != i
                    && !parents[i].contains(&p)
                {
                    parents[i].push(p);
                }
            }
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ps) in parents.iter().enumerate() {
            for &p in ps {
                children[p].push(i);
            }
        }
        let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut layer: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order_layers: Vec<Vec<usize>> = Vec::new();
        let mut placed = 0;
        while !layer.is_empty() {
            layer.sort_by(|&a, &b| nodes[a].name().cmp(nodes[b].name()));
            let mut next = Vec::new();
            for &i in &layer {
                for &c in &children[i] {
                    waiting[c] -= 1;
                    if waiting[c] == 0 {
                        next.push(c);
                    }
                }
            }
            placed += layer.len();
            order_layers.push(std::mem::replace(&mut layer, next));
        }
        if placed < n {
            let mut stuck: Vec<&str> = (0..n)
                .filter(|&i| waiting[i] > 0)
                .map(|i| nodes[i].name())
                .collect();
            stuck.sort();
            return Err(PipelineError::InvalidPipeline {
                problems: vec![format!(
                    "circular dependencies between nodes: {}",
                    stuck
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
            });
        }

        // Renumber in topological order.
        let order: Vec<usize> = order_layers.iter().flatten().copied().collect();
        let mut position = vec![0usize; n];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let sorted: Vec<Node> = order
            .iter()
            .map(|&old| slots[old].take().expect("each node once"))
            .collect();
        let remap = |v: &Vec<usize>| -> Vec<usize> {
            let mut out: Vec<usize> = v.iter().map(|&x| position[x]).collect();
            out.sort_unstable();
            out
        };
        let new_parents: Vec<Vec<usize>> = order.iter().map(|&old| remap(&parents[old])).collect();
        let new_children: Vec<Vec<usize>> = order.iter().map(|&old| remap(&children[old])).collect();
        let layers: Vec<Vec<usize>> = order_layers
            .iter()
            .map(|l| l.iter().map(|&old| position[old]).collect())
            .collect();

        let produced: HashSet<&str> = sorted
            .iter()
            .flat_map(|n| n.outputs().iter().map(|o| transcode::strip(o)))
            .collect();
        let consumed: HashSet<&str> = sorted
            .iter()
            .flat_map(|n| n.inputs().iter().map(|i| transcode::strip(i)))
            .collect();
        let inputs: BTreeSet<String> = sorted
            .iter()
            .flat_map(|n| n.inputs().iter())
            .filter(|i| !produced.contains(transcode::strip(i)))
            .cloned()
            .collect();
        let outputs: BTreeSet<String> = sorted
            .iter()
            .flat_map(|n| n.outputs().iter())
            .filter(|o| !consumed.contains(transcode::strip(o)))
            .cloned()
            .collect();
        let index = sorted
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        Ok(Pipeline {
            inner: Arc::new(Inner {
                nodes: sorted,
                index,
                parents: new_parents,
                children: new_children,
                layers,
                inputs,
                outputs,
            }),
        })
    }

    /// A pipeline without nodes.
    pub fn empty() -> Pipeline {
        Pipeline::new(Vec::new()).expect("an empty pipeline is valid")
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.inner.nodes
    }

    /// The nodes grouped in layers: a node's dependencies are all in earlier layers.
    pub fn layers(&self) -> Vec<Vec<&Node>> {
        self.inner
            .layers
            .iter()
            .map(|l| l.iter().map(|&i| &self.inner.nodes[i]).collect())
            .collect()
    }

    /// A node by full name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.inner.index.get(name).map(|&i| &self.inner.nodes[i])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.inner.nodes.is_empty()
    }

    /// Free inputs: consumed but produced by no node (transcoding-aware), parameters included.
    pub fn inputs(&self) -> BTreeSet<String> {
        self.inner.inputs.clone()
    }

    /// Free outputs: produced and consumed by no node (transcoding-aware).
    pub fn outputs(&self) -> BTreeSet<String> {
        self.inner.outputs.clone()
    }

    /// Every dataset any node consumes.
    pub fn all_inputs(&self) -> BTreeSet<String> {
        self.nodes()
            .iter()
            .flat_map(|n| n.inputs().iter().cloned())
            .collect()
    }

    /// Every dataset any node produces.
    pub fn all_outputs(&self) -> BTreeSet<String> {
        self.nodes()
            .iter()
            .flat_map(|n| n.outputs().iter().cloned())
            .collect()
    }

    /// Every dataset named by any node.
    pub fn datasets(&self) -> BTreeSet<String> {
        let mut all = self.all_inputs();
        all.extend(self.all_outputs());
        all
    }

    /// For each node (by index into [`Pipeline::nodes`]), the nodes it depends on.
    pub fn parents(&self) -> &[Vec<usize>] {
        &self.inner.parents
    }

    /// For each node, the nodes that depend on it.
    pub fn children(&self) -> &[Vec<usize>] {
        &self.inner.children
    }

    fn subset(&self, keep: impl Fn(usize, &Node) -> bool) -> Pipeline {
        let nodes: Vec<Node> = self
            .nodes()
            .iter()
            .enumerate()
            .filter(|(i, n)| keep(*i, n))
            .map(|(_, n)| n.clone())
            .collect();
        Pipeline::new(nodes).expect("a subset of a valid pipeline is valid")
    }

    /// Both pipelines' nodes. A node name in both must denote the same node.
    pub fn union(&self, other: &Pipeline) -> Result<Pipeline, PipelineError> {
        let mut nodes: Vec<Node> = self.nodes().to_vec();
        let mut problems = Vec::new();
        for n in other.nodes() {
            match self.node(n.name()) {
                Some(mine) if mine == n => {}
                Some(_) => problems.push(format!(
                    "node `{}` is defined differently in the two pipelines",
                    n.name()
                )),
                None => nodes.push(n.clone()),
            }
        }
        if !problems.is_empty() {
            return Err(PipelineError::InvalidPipeline { problems });
        }
        Pipeline::new(nodes)
    }

    /// Nodes of `self` that `other` does not have (by name).
    pub fn difference(&self, other: &Pipeline) -> Pipeline {
        self.subset(|_, n| other.node(n.name()).is_none())
    }

    /// Nodes present in both (by name).
    pub fn intersection(&self, other: &Pipeline) -> Pipeline {
        self.subset(|_, n| other.node(n.name()).is_some())
    }

    fn resolve_names<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<usize>, PipelineError> {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        let mut suggestions = Vec::new();
        for name in names {
            let name = name.as_ref();
            match self.inner.index.get(name) {
                Some(&i) => found.push(i),
                None => {
                    unknown.push(name.to_string());
                    let suffix = format!(".{name}");
                    for n in self.nodes() {
                        if n.name().ends_with(&suffix) || edit_distance(n.name(), name) <= 2 {
                            suggestions.push(n.name().to_string());
                        }
                    }
                }
            }
        }
        if unknown.is_empty() {
            Ok(found)
        } else {
            suggestions.sort();
            suggestions.dedup();
            Err(PipelineError::UnknownNodes {
                names: unknown,
                suggestions,
            })
        }
    }

    /// Nodes consuming (`consumers = true`) or producing the given datasets.
    /// A bare name matches every `name@format`; a transcoded name matches exactly.
    fn nodes_touching<S: AsRef<str>>(
        &self,
        datasets: &[S],
        consumers: bool,
    ) -> Result<Vec<usize>, PipelineError> {
        let mut found = BTreeSet::new();
        let mut unknown = Vec::new();
        for ds in datasets {
            let ds = ds.as_ref();
            let matches = |name: &String| match transcode::split(ds) {
                (_, Some(_)) => name == ds,
                (base, None) => transcode::strip(name) == base,
            };
            let mut any = false;
            for (i, n) in self.nodes().iter().enumerate() {
                let list = if consumers { n.inputs() } else { n.outputs() };
                if list.iter().any(matches) {
                    found.insert(i);
                    any = true;
                }
            }
            if !any {
                unknown.push(ds.to_string());
            }
        }
        if unknown.is_empty() {
            Ok(found.into_iter().collect())
        } else {
            Err(PipelineError::UnknownDatasets { names: unknown })
        }
    }

    fn closure(&self, seeds: Vec<usize>, downstream: bool) -> Vec<bool> {
        let mut keep = vec![false; self.len()];
        let mut stack = seeds;
        while let Some(i) = stack.pop() {
            if keep[i] {
                continue;
            }
            keep[i] = true;
            let next = if downstream {
                &self.inner.children[i]
            } else {
                &self.inner.parents[i]
            };
            stack.extend(next.iter().copied());
        }
        keep
    }

    /// Exactly the named nodes.
    pub fn only_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        let idx: HashSet<usize> = self.resolve_names(names)?.into_iter().collect();
        Ok(self.subset(|i, _| idx.contains(&i)))
    }

    /// Nodes with any of the tags.
    pub fn only_nodes_with_tags<S: AsRef<str>>(&self, tags: &[S]) -> Pipeline {
        self.subset(|_, n| tags.iter().any(|t| n.tags().contains(t.as_ref())))
    }

    /// Nodes in the namespaces (or nested below them).
    pub fn only_nodes_with_namespaces<S: AsRef<str>>(
        &self,
        namespaces: &[S],
    ) -> Result<Pipeline, PipelineError> {
        let in_ns = |n: &Node, ns: &str| {
            n.namespace()
                .is_some_and(|own| own == ns || own.starts_with(&format!("{ns}.")))
        };
        let unknown: Vec<String> = namespaces
            .iter()
            .map(AsRef::as_ref)
            .filter(|ns| !self.nodes().iter().any(|n| in_ns(n, ns)))
            .map(str::to_string)
            .collect();
        if !unknown.is_empty() {
            return Err(PipelineError::UnknownNamespaces { names: unknown });
        }
        Ok(self.subset(|_, n| namespaces.iter().any(|ns| in_ns(n, ns.as_ref()))))
    }

    /// The named nodes and everything downstream of them.
    pub fn from_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        let keep = self.closure(self.resolve_names(names)?, true);
        Ok(self.subset(|i, _| keep[i]))
    }

    /// The named nodes and everything upstream of them.
    pub fn to_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        let keep = self.closure(self.resolve_names(names)?, false);
        Ok(self.subset(|i, _| keep[i]))
    }

    /// Nodes depending directly or transitively on the datasets.
    pub fn from_inputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        let keep = self.closure(self.nodes_touching(datasets, true)?, true);
        Ok(self.subset(|i, _| keep[i]))
    }

    /// Nodes needed to produce the datasets.
    pub fn to_outputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        let keep = self.closure(self.nodes_touching(datasets, false)?, false);
        Ok(self.subset(|i, _| keep[i]))
    }

    /// Nodes consuming any of the datasets directly.
    pub fn only_nodes_with_inputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        let idx: HashSet<usize> = self.nodes_touching(datasets, true)?.into_iter().collect();
        Ok(self.subset(|i, _| idx.contains(&i)))
    }

    /// Nodes producing any of the datasets directly.
    pub fn only_nodes_with_outputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        let idx: HashSet<usize> = self.nodes_touching(datasets, false)?.into_iter().collect();
        Ok(self.subset(|i, _| idx.contains(&i)))
    }

    /// Applies each given filter to this pipeline and intersects the results.
    /// An empty result is an error naming the filters.
    pub fn filter(&self, f: &PipelineFilter) -> Result<Pipeline, PipelineError> {
        let mut result = self.clone();
        let mut apply = |p: Pipeline| result = result.intersection(&p);
        if !f.tags.is_empty() {
            apply(self.only_nodes_with_tags(&f.tags));
        }
        if !f.node_names.is_empty() {
            apply(self.only_nodes(&f.node_names)?);
        }
        if !f.from_nodes.is_empty() {
            apply(self.from_nodes(&f.from_nodes)?);
        }
        if !f.to_nodes.is_empty() {
            apply(self.to_nodes(&f.to_nodes)?);
        }
        if !f.from_inputs.is_empty() {
            apply(self.from_inputs(&f.from_inputs)?);
        }
        if !f.to_outputs.is_empty() {
            apply(self.to_outputs(&f.to_outputs)?);
        }
        if !f.node_namespaces.is_empty() {
            apply(self.only_nodes_with_namespaces(&f.node_namespaces)?);
        }
        if result.is_empty() && !self.is_empty() {
            return Err(PipelineError::EmptyAfterFilter {
                filters: f.describe(),
            });
        }
        Ok(result)
    }

    /// A copy with `tags` added to every node.
    pub fn tag<S: AsRef<str>>(&self, tags: &[S]) -> Pipeline {
        let extra: BTreeSet<String> = tags.iter().map(|t| t.as_ref().to_string()).collect();
        let nodes = self.nodes().iter().map(|n| {
            n.with_wiring(
                n.name().to_string(),
                n.inputs().to_vec(),
                n.outputs().to_vec(),
                n.namespace().map(str::to_string),
                &extra,
            )
        });
        Pipeline::new(nodes.collect::<Vec<_>>()).expect("tagging keeps a pipeline valid")
    }

    /// Wraps the pipeline in a namespace with Kedro's rules: node names
    /// become `ns.name`; datasets `ns.ds` and parameters `params:ns.x`
    /// unless mapped; `parameters` is unchanged; transcoding suffixes are
    /// kept; nested namespaces compose. Mapping keys that the pipeline does
    /// not have are errors, all reported at once.
    pub fn namespaced(&self, opts: &NamespaceOptions) -> Result<Pipeline, PipelineError> {
        let free_inputs: BTreeSet<&str> = self.inner.inputs.iter().map(|i| transcode::strip(i)).collect();
        let all_outputs: BTreeSet<String> = self
            .all_outputs()
            .iter()
            .map(|o| transcode::strip(o).to_string())
            .collect();
        let params_used: BTreeSet<String> = self
            .all_inputs()
            .iter()
            .filter_map(|i| i.strip_prefix("params:").map(str::to_string))
            .collect();
        let mut problems = Vec::new();
        for key in opts.inputs.keys() {
            if is_param(key) {
                problems.push(format!(
                    "inputs: `{key}` is a parameter; map it under `parameters`"
                ));
            } else if !free_inputs.contains(transcode::strip(key)) {
                problems.push(format!("inputs: `{key}` is not a free input of the pipeline"));
            }
        }
        for key in opts.outputs.keys() {
            if !all_outputs.contains(transcode::strip(key)) {
                problems.push(format!("outputs: `{key}` is not an output of the pipeline"));
            }
        }
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in &opts.parameters {
            let k = key.strip_prefix("params:").unwrap_or(key);
            let used = params_used
                .iter()
                .any(|p| p == k || p.starts_with(&format!("{k}.")));
            if !used {
                problems.push(format!(
                    "parameters: `params:{k}` is not a parameter of the pipeline"
                ));
                continue;
            }
            let v = value.strip_prefix("params:").unwrap_or(value);
            params.insert(k.to_string(), v.to_string());
        }
        if !problems.is_empty() {
            return Err(PipelineError::NamespaceMapping { problems });
        }
        let ns = opts.namespace.as_deref().filter(|s| !s.is_empty());
        let rename = |name: &str| -> String {
            if name == "parameters" {
                return name.to_string();
            }
            if let Some(key) = name.strip_prefix("params:") {
                for (from, to) in &params {
                    if key == from {
                        return format!("params:{to}");
                    }
                    if let Some(rest) = key.strip_prefix(&format!("{from}.")) {
                        return format!("params:{to}.{rest}");
                    }
                }
                return match ns {
                    Some(ns) => format!("params:{ns}.{key}"),
                    None => name.to_string(),
                };
            }
            let (base, fmt) = transcode::split(name);
            let suffix = fmt.map(|f| format!("@{f}")).unwrap_or_default();
            if let Some(to) = opts.inputs.get(base).or_else(|| opts.inputs.get(name)) {
                return format!("{}{suffix}", transcode::strip(to));
            }
            if let Some(to) = opts.outputs.get(base).or_else(|| opts.outputs.get(name)) {
                return format!("{}{suffix}", transcode::strip(to));
            }
            match ns {
                Some(ns) => format!("{ns}.{base}{suffix}"),
                None => name.to_string(),
            }
        };
        let extra: BTreeSet<String> = opts.tags.iter().cloned().collect();
        let nodes: Vec<Node> = self
            .nodes()
            .iter()
            .map(|n| {
                let (name, namespace) = match ns {
                    Some(ns) => (
                        format!("{ns}.{}", n.name()),
                        Some(match n.namespace() {
                            Some(inner) => format!("{ns}.{inner}"),
                            None => ns.to_string(),
                        }),
                    ),
                    None => (n.name().to_string(), n.namespace().map(str::to_string)),
                };
                n.with_wiring(
                    name,
                    n.inputs().iter().map(|i| rename(i)).collect(),
                    n.outputs().iter().map(|o| rename(o)).collect(),
                    namespace,
                    &extra,
                )
            })
            .collect();
        Pipeline::new(nodes)
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.nodes().iter().map(Node::name))
            .finish()
    }
}

impl PartialEq for Pipeline {
    fn eq(&self, other: &Self) -> bool {
        self.nodes() == other.nodes()
    }
}

macro_rules! ops {
    ($($t:ty),*) => {$(
        impl std::ops::Add<$t> for $t {
            type Output = Result<Pipeline, PipelineError>;
            fn add(self, rhs: $t) -> Self::Output {
                self.union(&rhs)
            }
        }
        impl std::ops::BitOr<$t> for $t {
            type Output = Result<Pipeline, PipelineError>;
            fn bitor(self, rhs: $t) -> Self::Output {
                self.union(&rhs)
            }
        }
        impl std::ops::Sub<$t> for $t {
            type Output = Pipeline;
            fn sub(self, rhs: $t) -> Pipeline {
                self.difference(&rhs)
            }
        }
        impl std::ops::BitAnd<$t> for $t {
            type Output = Pipeline;
            fn bitand(self, rhs: $t) -> Pipeline {
                self.intersection(&rhs)
            }
        }
    )*};
}
ops!(Pipeline, &Pipeline);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionRegistry;

    fn n(name: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        FunctionRegistry::with_builtins()
            .node("noop", inputs.to_vec(), outputs.to_vec())
            .unwrap()
            .name(name)
            .build()
            .unwrap()
    }

    #[test]
    fn order_is_layered_and_sorted() {
        let p = Pipeline::new(vec![
            n("c", &["b"], &["out"]),
            n("b2", &["a"], &["b"]),
            n("a1", &["x"], &["a"]),
            n("a0", &["y"], &["z"]),
        ])
        .unwrap();
        let names: Vec<&str> = p.nodes().iter().map(Node::name).collect();
        assert_eq!(names, ["a0", "a1", "b2", "c"]);
        assert_eq!(p.layers().len(), 3);
        assert_eq!(p.inputs(), BTreeSet::from(["x".to_string(), "y".to_string()]));
        assert_eq!(p.outputs(), BTreeSet::from(["out".to_string(), "z".to_string()]));
        assert_eq!(p.parents()[3], vec![2]);
    }

    #[test]
    fn operators() {
        let a = Pipeline::new(vec![n("a", &["x"], &["y"])]).unwrap();
        let b = Pipeline::new(vec![n("b", &["y"], &["z"])]).unwrap();
        let ab = (&a + &b).unwrap();
        assert_eq!(ab.len(), 2);
        assert_eq!((&ab - &a).len(), 1);
        assert_eq!((&ab & &a).nodes()[0].name(), "a");
        let other_a = Pipeline::new(vec![n("a", &["q"], &["y"])]).unwrap();
        assert!((&ab | &other_a).is_err());
    }
}
