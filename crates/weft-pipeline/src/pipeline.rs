//! The immutable pipeline: a DAG of nodes wired by dataset names.
//!
//! A [`Pipeline`] is validated once, at construction, and never changes:
//! every operation ([`union`](Pipeline::union), the filters in
//! [`crate::filter`], [`namespaced`](Pipeline::namespaced), ...) returns a
//! new pipeline. The topological order, the layers and the parent/child
//! index lists a runner needs are computed once, in `O(n log n)` for `n`
//! nodes, and shared by every clone.
//!
//! Dependencies follow Kedro's rules: node B depends on node A when B reads
//! a dataset A writes, and `name@format` is the same dataset as every other
//! `name@*` (see [`crate::transcode`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::error::PipelineError;
use crate::node::Node;
use crate::transcode;

pub use crate::filter::PipelineFilter;
pub use crate::namespace::NamespaceOptions;

/// An immutable set of nodes, in deterministic topological order (layer by
/// layer, sorted by name within a layer). Cloning is cheap (shared).
///
/// ```
/// use weft_pipeline::{FunctionRegistry, Pipeline};
/// let reg = FunctionRegistry::with_builtins();
/// let node = |name: &str, i: &str, o: &str| reg.node("noop", i, o).unwrap().name(name).build().unwrap();
/// let p = Pipeline::new([node("second", "a", "b"), node("first", "x", "a")]).unwrap();
/// let names: Vec<&str> = p.nodes().iter().map(|n| n.name()).collect();
/// assert_eq!(names, ["first", "second"]);
/// assert_eq!(p.inputs().into_iter().collect::<Vec<_>>(), ["x"]);
/// assert_eq!(p.parents()[1], [0]);
/// ```
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) inner: Arc<Inner>,
}

/// The shared, precomputed state of a pipeline.
pub(crate) struct Inner {
    /// Nodes in topological order.
    pub(crate) nodes: Vec<Node>,
    /// Node name → index into `nodes`.
    pub(crate) index: HashMap<String, usize>,
    /// Sorted indices of the nodes each node depends on.
    pub(crate) parents: Vec<Vec<usize>>,
    /// Sorted indices of the nodes depending on each node.
    pub(crate) children: Vec<Vec<usize>>,
    /// Index of the first node of each layer (nodes are stored layer by layer).
    pub(crate) layer_starts: Vec<usize>,
    /// Free inputs.
    pub(crate) inputs: BTreeSet<String>,
    /// Free outputs.
    pub(crate) outputs: BTreeSet<String>,
    /// Logical dataset name → sorted indices of the nodes reading it.
    pub(crate) consumers: HashMap<String, Vec<usize>>,
    /// Logical dataset name → index of the node writing it.
    pub(crate) producers: HashMap<String, usize>,
}

/// Formats names as `` `a`, `b` ``.
pub(crate) fn quote_all<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name [`crate::NodeBuilder::build`] gives a node without an explicit name.
pub(crate) fn default_node_name(func: &str, inputs: &[String], outputs: &[String]) -> String {
    format!("{func}([{}]) -> [{}]", inputs.join(","), outputs.join(","))
}

/// Writers by logical dataset name: the first writer of each, and every
/// writer of the names written more than once (only in invalid pipelines).
struct Producers<'a> {
    first: HashMap<&'a str, usize>,
    /// Logical name → every `(node, output as spelled)`, for names with
    /// more than one writer.
    repeated: BTreeMap<&'a str, Vec<(usize, &'a str)>>,
}

impl<'a> Producers<'a> {
    fn of(nodes: &'a [Node]) -> Self {
        let mut first: HashMap<&str, (usize, &str)> = HashMap::with_capacity(nodes.len());
        let mut repeated: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            for out in node.outputs() {
                let base = transcode::strip(out);
                match first.entry(base) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert((i, out));
                    }
                    std::collections::hash_map::Entry::Occupied(o) => {
                        repeated
                            .entry(base)
                            .or_insert_with(|| vec![*o.get()])
                            .push((i, out));
                    }
                }
            }
        }
        Producers {
            first: first.into_iter().map(|(k, (i, _))| (k, i)).collect(),
            repeated,
        }
    }
}

/// Problems with names and producers (everything but cycles).
fn wiring_problems(nodes: &[Node], producers: &Producers<'_>) -> Vec<String> {
    let mut problems = Vec::new();

    let mut seen: HashSet<&str> = HashSet::with_capacity(nodes.len());
    let mut repeated: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        if !seen.insert(n.name()) {
            *repeated.entry(n.name()).or_insert(1) += 1;
        }
    }
    for (name, count) in &repeated {
        problems.push(format!(
            "node names must be unique: `{name}` is used by {count} nodes"
        ));
    }

    // Malformed names, and names used both with and without `@`.
    let mut transcoded: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for n in nodes {
        for d in n.inputs().iter().chain(n.outputs()) {
            if !transcode::is_valid(d) {
                problems.push(format!(
                    "dataset `{d}` of node `{}` is malformed: it has more than one `@` or an empty part; expected `name@format`",
                    n.name()
                ));
                continue;
            }
            if let (base, Some(_)) = transcode::split(d) {
                transcoded.entry(base).or_default().insert(d);
            }
        }
    }
    if !transcoded.is_empty() {
        let mut bare_users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for n in nodes {
            for d in n.inputs().iter().chain(n.outputs()) {
                if !transcode::is_transcoded(d) && transcoded.contains_key(d.as_str()) {
                    bare_users.entry(d).or_default().insert(n.name());
                }
            }
        }
        for (base, users) in &bare_users {
            if let Some(forms) = transcoded.get(base) {
                problems.push(format!(
                    "dataset `{base}` is used with transcoding ({}) but referenced without `@` by {}; use `{base}@<format>` everywhere or rename one of them",
                    quote_all(forms),
                    quote_all(users)
                ));
            }
        }
    }

    for (base, who) in &producers.repeated {
        let described = who
            .iter()
            .map(|&(i, out)| format!("`{}` (as `{out}`)", nodes[i].name()))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(format!(
            "dataset `{base}` is an output of more than one node: {described}; node outputs must be unique"
        ));
    }
    problems
}

/// Kahn's algorithm, layer by layer, each layer sorted by node name.
/// Returns the nodes in order and the index of each layer's first node, or
/// the flags of the nodes that could not be placed.
fn layered_order(
    nodes: &[Node],
    parents: &Adjacency,
    children: &Adjacency,
) -> Result<(Vec<usize>, Vec<usize>), Vec<bool>> {
    let n = nodes.len();
    let mut waiting: Vec<usize> = (0..n).map(|i| parents.of(i).len()).collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    order.reserve(n.saturating_sub(order.len()));
    let mut layer_starts = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let end = order.len();
        layer_starts.push(start);
        order[start..end].sort_unstable_by(|&a, &b| nodes[a].name().cmp(nodes[b].name()).then(a.cmp(&b)));
        for k in start..end {
            for &c in children.of(order[k]) {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    order.push(c);
                }
            }
        }
        start = end;
    }
    if order.len() == n {
        Ok((order, layer_starts))
    } else {
        Err(waiting.iter().map(|&w| w > 0).collect())
    }
}

/// Adjacency lists in one buffer (compressed rows).
struct Adjacency {
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    fn of(&self, i: usize) -> &[usize] {
        &self.targets[self.starts[i]..self.starts[i + 1]]
    }

    /// The reverse graph (each list sorted, since rows are visited in order).
    fn reversed(&self) -> Adjacency {
        let n = self.starts.len() - 1;
        let mut starts = vec![0usize; n + 1];
        for &t in &self.targets {
            starts[t + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut targets = vec![0usize; self.targets.len()];
        for i in 0..n {
            for &t in self.of(i) {
                targets[fill[t]] = i;
                fill[t] += 1;
            }
        }
        Adjacency { starts, targets }
    }

    /// Per-node lists, for the cycle report.
    fn to_lists(&self) -> Vec<Vec<usize>> {
        (0..self.starts.len() - 1).map(|i| self.of(i).to_vec()).collect()
    }
}

/// Strongly connected components (iterative Tarjan) of the subgraph of
/// `active` nodes; only components that contain a cycle are returned.
fn cyclic_components(children: &[Vec<usize>], active: &[bool]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = children.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for root in (0..n).filter(|&r| active[r]) {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&(v, pos)) = calls.last() {
            if let Some(&w) = children[v].get(pos) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if !active[w] {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                let cyclic = component.len() > 1 || children[v].contains(&v);
                if cyclic {
                    components.push(component);
                }
            }
        }
    }
    components
}

/// One shortest cycle through `start` inside `members` (breadth-first).
fn cycle_through(start: usize, children: &[Vec<usize>], members: &HashSet<usize>) -> Vec<usize> {
    let mut previous: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &children[v] {
            if !members.contains(&w) {
                continue;
            }
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while at != start {
                    at = previous[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if w != start && !previous.contains_key(&w) {
                previous.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

/// Describes every cycle among the unplaced nodes.
fn cycle_problems(nodes: &[Node], children: &[Vec<usize>], unplaced: &[bool]) -> Vec<String> {
    let mut found: Vec<(Vec<&str>, String)> = cyclic_components(children, unplaced)
        .into_iter()
        .map(|component| {
            let mut names: Vec<&str> = component.iter().map(|&i| nodes[i].name()).collect();
            names.sort_unstable();
            let start = component
                .iter()
                .copied()
                .min_by(|&a, &b| nodes[a].name().cmp(nodes[b].name()))
                .expect("a component has members");
            let members: HashSet<usize> = component.iter().copied().collect();
            let path = cycle_through(start, children, &members);
            let mut shown: Vec<String> = path.iter().map(|&i| format!("`{}`", nodes[i].name())).collect();
            shown.push(format!("`{}`", nodes[start].name()));
            (names, shown.join(" -> "))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(names, path)| {
            format!(
                "circular dependencies exist among the following nodes: {} ({path})",
                quote_all(names)
            )
        })
        .collect()
}

impl Pipeline {
    /// Validates the nodes and builds the pipeline.
    ///
    /// Every problem is reported at once: duplicate node names, a dataset
    /// written by two nodes (transcoding-aware: `a@pandas` and `a@spark` are
    /// one dataset), a dataset used both with and without `@`, a name with
    /// more than one `@`, and cycles (naming the nodes in each cycle).
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Pipeline, PipelineError> {
        let nodes: Vec<Node> = nodes.into_iter().collect();
        let n = nodes.len();

        let producers = Producers::of(&nodes);
        let mut problems = wiring_problems(&nodes, &producers);

        // Edges, deduplicated: the parents of each node, sorted.
        let mut parents = Adjacency {
            starts: Vec::with_capacity(n + 1),
            targets: Vec::with_capacity(n),
        };
        parents.starts.push(0);
        for node in &nodes {
            let from = parents.targets.len();
            for input in node.inputs() {
                let base = transcode::strip(input);
                match producers.repeated.get(base) {
                    Some(who) => parents.targets.extend(who.iter().map(|&(p, _)| p)),
                    None => parents.targets.extend(producers.first.get(base)),
                }
            }
            let mine = &mut parents.targets[from..];
            if mine.len() > 1 {
                mine.sort_unstable();
                let mut kept = 1;
                for k in 1..mine.len() {
                    if mine[k] != mine[kept - 1] {
                        mine[kept] = mine[k];
                        kept += 1;
                    }
                }
                parents.targets.truncate(from + kept);
            }
            parents.starts.push(parents.targets.len());
        }
        let children = parents.reversed();

        let (order, layer_starts) = match layered_order(&nodes, &parents, &children) {
            Ok(placed) => placed,
            Err(unplaced) => {
                problems.extend(cycle_problems(&nodes, &children.to_lists(), &unplaced));
                (Vec::new(), Vec::new())
            }
        };
        if !problems.is_empty() {
            return Err(PipelineError::InvalidPipeline { problems });
        }
        drop(producers);

        // Renumber in topological order.
        let mut position = vec![0usize; n];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let remap = |v: &[usize]| -> Vec<usize> {
            let mut out: Vec<usize> = v.iter().map(|&x| position[x]).collect();
            out.sort_unstable();
            out
        };
        let new_parents: Vec<Vec<usize>> = order.iter().map(|&old| remap(parents.of(old))).collect();
        let new_children: Vec<Vec<usize>> = order.iter().map(|&old| remap(children.of(old))).collect();
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let sorted: Vec<Node> = order
            .iter()
            .map(|&old| slots[old].take().expect("each node is placed once"))
            .collect();

        let mut consumers: HashMap<String, Vec<usize>> = HashMap::with_capacity(n);
        let mut producer_of: HashMap<String, usize> = HashMap::with_capacity(n);
        for (i, node) in sorted.iter().enumerate() {
            for input in node.inputs() {
                let base = transcode::strip(input);
                match consumers.get_mut(base) {
                    Some(list) => {
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                    None => {
                        consumers.insert(base.to_string(), vec![i]);
                    }
                }
            }
            for out in node.outputs() {
                producer_of.insert(transcode::strip(out).to_string(), i);
            }
        }
        let inputs: BTreeSet<String> = sorted
            .iter()
            .flat_map(|n| n.inputs())
            .filter(|i| !producer_of.contains_key(transcode::strip(i)))
            .cloned()
            .collect();
        let outputs: BTreeSet<String> = sorted
            .iter()
            .flat_map(|n| n.outputs())
            .filter(|o| !consumers.contains_key(transcode::strip(o)))
            .cloned()
            .collect();
        let mut index = HashMap::with_capacity(n);
        for (i, node) in sorted.iter().enumerate() {
            index.insert(node.name().to_string(), i);
        }
        Ok(Pipeline {
            inner: Arc::new(Inner {
                nodes: sorted,
                index,
                parents: new_parents,
                children: new_children,
                layer_starts,
                inputs,
                outputs,
                consumers,
                producers: producer_of,
            }),
        })
    }

    /// A pipeline without nodes.
    pub fn empty() -> Pipeline {
        Pipeline::new(Vec::new()).expect("an empty pipeline is valid")
    }

    /// The nodes in topological order: layer by layer (see
    /// [`Pipeline::layers`]), sorted by name within a layer.
    pub fn nodes(&self) -> &[Node] {
        &self.inner.nodes
    }

    /// The nodes grouped in layers (Kedro's `grouped_nodes`): the first layer
    /// depends on no node, and each node is in the layer after its latest
    /// dependency. Within a layer nodes are sorted by name.
    pub fn layers(&self) -> Vec<Vec<&Node>> {
        let starts = &self.inner.layer_starts;
        let nodes = &self.inner.nodes;
        starts
            .iter()
            .enumerate()
            .map(|(l, &s)| {
                let end = starts.get(l + 1).copied().unwrap_or(nodes.len());
                nodes[s..end].iter().collect()
            })
            .collect()
    }

    /// A node by full name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.index_of(name).map(|i| &self.inner.nodes[i])
    }

    /// The position of a node in [`Pipeline::nodes`], by full name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.inner.index.get(name).copied()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.inner.nodes.is_empty()
    }

    /// Free inputs: datasets consumed but produced by no node of the
    /// pipeline (transcoding-aware), parameters included. Names are given as
    /// the nodes spell them (`a@pandas`).
    pub fn inputs(&self) -> BTreeSet<String> {
        self.inner.inputs.clone()
    }

    /// Free outputs: datasets produced and consumed by no node of the
    /// pipeline (transcoding-aware).
    pub fn outputs(&self) -> BTreeSet<String> {
        self.inner.outputs.clone()
    }

    /// Every dataset (and parameter) any node consumes.
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

    /// Every dataset (and parameter) named by any node.
    pub fn datasets(&self) -> BTreeSet<String> {
        let mut all = self.all_inputs();
        all.extend(self.all_outputs());
        all
    }

    /// For each node (by index into [`Pipeline::nodes`]), the sorted indices
    /// of the nodes it depends on. Every parent index is smaller than the
    /// node's own index.
    pub fn parents(&self) -> &[Vec<usize>] {
        &self.inner.parents
    }

    /// For each node, the sorted indices of the nodes that depend on it.
    pub fn children(&self) -> &[Vec<usize>] {
        &self.inner.children
    }

    /// The node writing a dataset (transcoding-aware: `a@pandas` finds the
    /// writer of `a@spark`).
    pub fn producer_of(&self, dataset: &str) -> Option<&Node> {
        self.inner
            .producers
            .get(transcode::strip(dataset))
            .map(|&i| &self.inner.nodes[i])
    }

    /// The nodes reading a dataset, in topological order (transcoding-aware).
    pub fn consumers_of(&self, dataset: &str) -> Vec<&Node> {
        self.inner
            .consumers
            .get(transcode::strip(dataset))
            .map(|v| v.iter().map(|&i| &self.inner.nodes[i]).collect())
            .unwrap_or_default()
    }

    /// The nodes whose flag is set, as a new pipeline.
    pub(crate) fn subset(&self, keep: &[bool]) -> Pipeline {
        if keep.iter().all(|&k| k) {
            return self.clone();
        }
        let nodes: Vec<Node> = self
            .nodes()
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(n, _)| n.clone())
            .collect();
        Pipeline::new(nodes).expect("a subset of a valid pipeline is valid")
    }

    /// Both pipelines' nodes (Kedro's `+`). A node name present in both must
    /// denote equal nodes; the result is validated like [`Pipeline::new`]
    /// (two nodes writing one dataset, cycles, ...).
    pub fn union(&self, other: &Pipeline) -> Result<Pipeline, PipelineError> {
        if other.is_empty() || Arc::ptr_eq(&self.inner, &other.inner) {
            return Ok(self.clone());
        }
        if self.is_empty() {
            return Ok(other.clone());
        }
        let mut nodes: Vec<Node> = self.nodes().to_vec();
        let mut problems = Vec::new();
        for n in other.nodes() {
            match self.node(n.name()) {
                Some(mine) if mine == n => {}
                Some(mine) => problems.push(format!(
                    "node `{}` is defined differently in the two pipelines: {mine:?} vs {n:?}",
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

    /// The nodes of `self` that `other` does not contain (Kedro's `-`).
    pub fn difference(&self, other: &Pipeline) -> Pipeline {
        let keep: Vec<bool> = self
            .nodes()
            .iter()
            .map(|n| other.node(n.name()) != Some(n))
            .collect();
        self.subset(&keep)
    }

    /// The nodes both pipelines contain (Kedro's `&`).
    pub fn intersection(&self, other: &Pipeline) -> Pipeline {
        let keep: Vec<bool> = self
            .nodes()
            .iter()
            .map(|n| other.node(n.name()) == Some(n))
            .collect();
        self.subset(&keep)
    }

    /// A copy with `tags` added to every node.
    pub fn tag<S: AsRef<str>>(&self, tags: &[S]) -> Pipeline {
        let extra: BTreeSet<String> = tags.iter().map(|t| t.as_ref().to_string()).collect();
        if extra.is_empty() {
            return self.clone();
        }
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

    /// A human-readable summary in Kedro's `describe()` layout: free inputs,
    /// nodes in execution order, free outputs.
    pub fn describe(&self) -> String {
        let list = |set: &BTreeSet<String>| {
            if set.is_empty() {
                "None".to_string()
            } else {
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let mut out = String::from("#### Pipeline execution order ####\n");
        out.push_str(&format!("Inputs: {}\n\n", list(&self.inner.inputs)));
        for n in self.nodes() {
            out.push_str(n.name());
            out.push('\n');
        }
        out.push_str(&format!("\nOutputs: {}\n", list(&self.inner.outputs)));
        out.push_str("##################################");
        out
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::empty()
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.nodes().iter().map(Node::name))
            .finish()
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pipeline([{}])",
            quote_all(self.nodes().iter().map(Node::name))
        )
    }
}

impl PartialEq for Pipeline {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.nodes() == other.nodes()
    }
}

impl TryFrom<Vec<Node>> for Pipeline {
    type Error = PipelineError;
    fn try_from(nodes: Vec<Node>) -> Result<Self, Self::Error> {
        Pipeline::new(nodes)
    }
}

macro_rules! ops {
    ($(($l:ty, $r:ty)),*) => {$(
        /// Union (Kedro's `+`); fails like [`Pipeline::union`].
        impl std::ops::Add<$r> for $l {
            type Output = Result<Pipeline, PipelineError>;
            fn add(self, rhs: $r) -> Self::Output {
                self.union(&rhs)
            }
        }
        /// Union (Kedro's `|`); fails like [`Pipeline::union`].
        impl std::ops::BitOr<$r> for $l {
            type Output = Result<Pipeline, PipelineError>;
            fn bitor(self, rhs: $r) -> Self::Output {
                self.union(&rhs)
            }
        }
        /// Difference (Kedro's `-`).
        impl std::ops::Sub<$r> for $l {
            type Output = Pipeline;
            fn sub(self, rhs: $r) -> Pipeline {
                self.difference(&rhs)
            }
        }
        /// Intersection (Kedro's `&`).
        impl std::ops::BitAnd<$r> for $l {
            type Output = Pipeline;
            fn bitand(self, rhs: $r) -> Pipeline {
                self.intersection(&rhs)
            }
        }
    )*};
}
ops!(
    (Pipeline, Pipeline),
    (&Pipeline, &Pipeline),
    (Pipeline, &Pipeline),
    (&Pipeline, Pipeline)
);

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

    fn names(p: &Pipeline) -> Vec<&str> {
        p.nodes().iter().map(Node::name).collect()
    }

    #[test]
    fn every_wiring_problem_is_reported_in_a_stable_order() {
        let err = Pipeline::new(vec![
            n("b", &["x"], &["y@pandas"]),
            n("a", &["y"], &["z"]),
            n("b", &["q"], &["y@spark"]),
            n("b", &["r"], &["w"]),
            n("c", &["a@@b"], &["y@csv"]),
        ])
        .unwrap_err();
        let PipelineError::InvalidPipeline { problems } = err else {
            panic!("expected InvalidPipeline, got {err}");
        };
        assert_eq!(
            problems,
            [
                "node names must be unique: `b` is used by 3 nodes",
                "dataset `a@@b` of node `c` is malformed: it has more than one `@` or an empty part; expected `name@format`",
                "dataset `y` is used with transcoding (`y@csv`, `y@pandas`, `y@spark`) but referenced without `@` by `a`; use `y@<format>` everywhere or rename one of them",
                "dataset `y` is an output of more than one node: `b` (as `y@pandas`), `b` (as `y@spark`), `c` (as `y@csv`); node outputs must be unique",
            ]
        );
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        let err = Pipeline::new(vec![
            n("a", &["z", "in"], &["x"]),
            n("b", &["x"], &["y"]),
            n("c", &["y"], &["z"]),
            n("d", &["in"], &["out"]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string().lines().filter(|l| l.contains("circular")).count(),
            1,
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("`a`, `b`, `c` (`a` -> `b` -> `c` -> `a`)"),
            "{err}"
        );
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
        assert_eq!(names(&p), ["a0", "a1", "b2", "c"]);
        let layers: Vec<Vec<&str>> = p
            .layers()
            .iter()
            .map(|l| l.iter().map(|n| n.name()).collect())
            .collect();
        assert_eq!(layers, vec![vec!["a0", "a1"], vec!["b2"], vec!["c"]]);
        assert_eq!(p.inputs(), BTreeSet::from(["x".to_string(), "y".to_string()]));
        assert_eq!(p.outputs(), BTreeSet::from(["out".to_string(), "z".to_string()]));
        assert_eq!(p.parents()[3], vec![2]);
        assert_eq!(p.children()[1], vec![2]);
        assert_eq!(p.index_of("b2"), Some(2));
        assert_eq!(p.producer_of("b").unwrap().name(), "b2");
        assert_eq!(p.consumers_of("a")[0].name(), "b2");
        assert!(p.describe().contains("Inputs: x, y"));
    }

    #[test]
    fn transcoded_datasets_link_nodes() {
        let p = Pipeline::new(vec![
            n("read", &["a@pandas"], &["b"]),
            n("write", &["x"], &["a@spark"]),
        ])
        .unwrap();
        assert_eq!(names(&p), ["write", "read"]);
        assert_eq!(p.inputs(), BTreeSet::from(["x".to_string()]));
    }

    #[test]
    fn tarjan_finds_only_cycles() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3 (3 is downstream, not in the cycle), 4 -> 4.
        let children = vec![vec![1], vec![2], vec![0, 3], vec![], vec![4]];
        let mut found = cyclic_components(&children, &[true; 5]);
        for c in &mut found {
            c.sort_unstable();
        }
        found.sort();
        assert_eq!(found, vec![vec![0, 1, 2], vec![4]]);
        let members: HashSet<usize> = [0, 1, 2].into();
        assert_eq!(cycle_through(1, &children, &members), vec![1, 2, 0]);
    }

    #[test]
    fn cycles_name_their_nodes_only() {
        let err = Pipeline::new(vec![
            n("a", &["z"], &["x"]),
            n("b", &["x"], &["y"]),
            n("c", &["y"], &["z"]),
            n("after", &["z"], &["w"]),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("`a`, `b`, `c`"), "{err}");
        assert!(err.contains("`a` -> `b` -> `c` -> `a`"), "{err}");
        assert!(!err.contains("`after`"), "{err}");
    }

    #[test]
    fn operators() {
        let a = Pipeline::new(vec![n("a", &["x"], &["y"])]).unwrap();
        let b = Pipeline::new(vec![n("b", &["y"], &["z"])]).unwrap();
        let ab = (&a + &b).unwrap();
        assert_eq!(ab.len(), 2);
        assert_eq!((&ab - &a).len(), 1);
        assert_eq!(names(&(&ab & &a)), ["a"]);
        assert_eq!((ab.clone() | a.clone()).unwrap(), ab);
        let other_a = Pipeline::new(vec![n("a", &["q"], &["y"])]).unwrap();
        assert!((&ab | &other_a).is_err());
        assert_eq!(format!("{ab}"), "Pipeline([`a`, `b`])");
        assert_eq!(names(&ab.tag(&["t"])), ["a", "b"]);
        assert!(ab.tag(&["t"]).nodes().iter().all(|n| n.tags().contains("t")));
    }

    #[test]
    fn default_names() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            default_node_name("noop", &s(&["a", "b"]), &s(&["c"])),
            "noop([a,b]) -> [c]"
        );
        let built = FunctionRegistry::with_builtins()
            .node("noop", ["a", "b"], "c")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            built.name(),
            default_node_name("noop", built.inputs(), built.outputs())
        );
    }
}
