//! Property tests: random DAGs (node `i` reads outputs of random earlier
//! nodes, plus free inputs), checked against a reference model.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use weft_pipeline::{FunctionRegistry, Node, Pipeline, PipelineError, PipelineFilter};

const NAMESPACES: [Option<&str>; 4] = [None, Some("a"), Some("a.b"), Some("c")];

/// One generated node: its index-level wiring and its pipeline node.
#[derive(Debug, Clone)]
struct Dag {
    /// deps[i]: indices of the earlier nodes node `i` reads.
    deps: Vec<Vec<usize>>,
    nodes: Vec<Node>,
}

impl Dag {
    fn names(&self, keep: impl Fn(usize) -> bool) -> BTreeSet<String> {
        (0..self.nodes.len())
            .filter(|&i| keep(i))
            .map(|i| self.nodes[i].name().to_string())
            .collect()
    }

    fn closure(&self, seeds: &BTreeSet<usize>, downstream: bool) -> BTreeSet<usize> {
        let mut keep = seeds.clone();
        loop {
            let before = keep.len();
            for i in 0..self.nodes.len() {
                for &d in &self.deps[i] {
                    if downstream && keep.contains(&d) {
                        keep.insert(i);
                    }
                    if !downstream && keep.contains(&i) {
                        keep.insert(d);
                    }
                }
            }
            if keep.len() == before {
                return keep;
            }
        }
    }
}

type RawNode = (Vec<Index>, Vec<u8>, Vec<u8>, usize, bool);

fn dag(max: usize) -> impl Strategy<Value = Dag> {
    (1..max)
        .prop_flat_map(|n| {
            let node = (
                prop::collection::vec(any::<Index>(), 0..4),
                prop::collection::vec(0u8..3, 0..2),
                prop::collection::vec(0u8..4, 0..3),
                0..NAMESPACES.len(),
                any::<bool>(),
            );
            (
                prop::collection::vec(node, n),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            )
        })
        .prop_map(|(raw, perm): (Vec<RawNode>, Vec<usize>)| {
            let reg = FunctionRegistry::with_builtins();
            let transcoded: Vec<bool> = raw.iter().map(|r| r.4).collect();
            let mut deps = Vec::new();
            let mut nodes = Vec::new();
            for (i, (picks, free, tags, ns, trans)) in raw.into_iter().enumerate() {
                let mut mine: Vec<usize> = if i == 0 {
                    Vec::new()
                } else {
                    picks.iter().map(|p| p.index(i)).collect()
                };
                mine.sort_unstable();
                mine.dedup();
                let mut inputs: Vec<String> = mine
                    .iter()
                    .map(|&j| {
                        if transcoded[j] {
                            format!("d{j}@read")
                        } else {
                            format!("d{j}")
                        }
                    })
                    .collect();
                let mut free: Vec<u8> = free;
                free.sort_unstable();
                free.dedup();
                inputs.extend(free.iter().map(|k| format!("in{k}")));
                let output = if trans {
                    format!("d{i}@write")
                } else {
                    format!("d{i}")
                };
                let mut b = reg
                    .node("noop", inputs, output)
                    .unwrap()
                    .name(format!("n{}", perm[i]))
                    .tags(tags.iter().map(|t| format!("t{t}")));
                if let Some(ns) = NAMESPACES[ns] {
                    b = b.namespace(ns);
                }
                nodes.push(b.build().unwrap());
                deps.push(mine);
            }
            Dag { deps, nodes }
        })
}

fn names(p: &Pipeline) -> BTreeSet<String> {
    p.nodes().iter().map(|n| n.name().to_string()).collect()
}

fn ordered(p: &Pipeline) -> Vec<String> {
    p.nodes().iter().map(|n| n.name().to_string()).collect()
}

/// A random selection from `items` (possibly empty).
fn pick<T: Clone>(items: &[T], picks: &[Index]) -> Vec<T> {
    if items.is_empty() {
        return Vec::new();
    }
    picks
        .iter()
        .map(|p| items[p.index(items.len())].clone())
        .collect()
}

fn picks() -> impl Strategy<Value = Vec<Index>> {
    prop_oneof![Just(Vec::new()), prop::collection::vec(any::<Index>(), 1..3)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn topological_order_respects_every_edge(d in dag(40)) {
        let p = Pipeline::new(d.nodes.clone()).unwrap();
        prop_assert_eq!(p.len(), d.nodes.len());
        // Every dependency edge goes forward, and parents/children agree.
        for (i, deps) in d.deps.iter().enumerate() {
            let me = p.index_of(d.nodes[i].name()).unwrap();
            let mut want: Vec<usize> = deps.iter().map(|&j| p.index_of(d.nodes[j].name()).unwrap()).collect();
            want.sort_unstable();
            prop_assert_eq!(&p.parents()[me], &want);
            for &j in &want {
                prop_assert!(j < me);
                prop_assert!(p.children()[j].contains(&me));
            }
        }
        // Layers: first layer has no parents, every other node sits right
        // after its latest parent; sorted by name; flattening gives nodes().
        let layers = p.layers();
        let mut layer_of = vec![0usize; p.len()];
        let mut flat = Vec::new();
        for (l, layer) in layers.iter().enumerate() {
            let layer_names: Vec<&str> = layer.iter().map(|n| n.name()).collect();
            let mut sorted = layer_names.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&layer_names, &sorted);
            for n in layer {
                let i = p.index_of(n.name()).unwrap();
                layer_of[i] = l;
                flat.push(n.name().to_string());
            }
        }
        prop_assert_eq!(&flat, &ordered(&p));
        for (i, ps) in p.parents().iter().enumerate() {
            let expected = ps.iter().map(|&j| layer_of[j] + 1).max().unwrap_or(0);
            prop_assert_eq!(layer_of[i], expected);
        }
        // Deterministic whatever the input order.
        let mut reversed = d.nodes.clone();
        reversed.reverse();
        prop_assert_eq!(ordered(&Pipeline::new(reversed).unwrap()), ordered(&p));
        // Free inputs are exactly the `in*` datasets.
        let free: BTreeSet<String> = d.nodes.iter().flat_map(|n| n.inputs()).filter(|i| i.starts_with("in")).cloned().collect();
        prop_assert_eq!(p.inputs(), free);
    }

    #[test]
    fn closures_match_the_reference(d in dag(30), seeds in prop::collection::vec(any::<Index>(), 1..3)) {
        let p = Pipeline::new(d.nodes.clone()).unwrap();
        let chosen: BTreeSet<usize> = seeds.iter().map(|s| s.index(d.nodes.len())).collect();
        let chosen_names: Vec<String> = chosen.iter().map(|&i| d.nodes[i].name().to_string()).collect();
        let down = d.closure(&chosen, true);
        let up = d.closure(&chosen, false);
        prop_assert_eq!(names(&p.from_nodes(&chosen_names).unwrap()), d.names(|i| down.contains(&i)));
        prop_assert_eq!(names(&p.to_nodes(&chosen_names).unwrap()), d.names(|i| up.contains(&i)));
        // to_outputs of the chosen nodes' outputs (bare names) = to_nodes.
        let outs: Vec<String> = chosen.iter().map(|&i| format!("d{i}")).collect();
        prop_assert_eq!(names(&p.to_outputs(&outs).unwrap()), d.names(|i| up.contains(&i)));
        // from_inputs of those outputs = strict descendants of their readers.
        let readers: BTreeSet<usize> = (0..d.nodes.len()).filter(|&i| d.deps[i].iter().any(|j| chosen.contains(j))).collect();
        let from = d.closure(&readers, true);
        prop_assert_eq!(names(&p.from_inputs(&outs).unwrap()), d.names(|i| from.contains(&i)));
        prop_assert_eq!(names(&p.only_nodes_with_inputs(&outs).unwrap()), d.names(|i| readers.contains(&i)));
        prop_assert_eq!(names(&p.only_nodes_with_outputs(&outs).unwrap()), d.names(|i| chosen.contains(&i)));
    }

    #[test]
    fn filter_is_the_intersection_of_single_filters(
        d in dag(25),
        tags in picks(), node_names in picks(), from_nodes in picks(), to_nodes in picks(),
        from_inputs in picks(), to_outputs in picks(), namespaces in picks(),
    ) {
        let p = Pipeline::new(d.nodes.clone()).unwrap();
        let all_names: Vec<String> = ordered(&p);
        let datasets: Vec<String> = p.datasets().into_iter().collect();
        let spaces: Vec<String> = {
            let mut s: BTreeSet<String> = BTreeSet::new();
            for n in p.nodes() {
                if let Some(ns) = n.namespace() {
                    s.insert(ns.to_string());
                    if let Some((outer, _)) = ns.split_once('.') {
                        s.insert(outer.to_string());
                    }
                }
            }
            s.into_iter().collect()
        };
        let f = PipelineFilter {
            tags: pick(&["t0", "t1", "t2", "t3", "none"].map(String::from), &tags),
            node_names: pick(&all_names, &node_names),
            from_nodes: pick(&all_names, &from_nodes),
            to_nodes: pick(&all_names, &to_nodes),
            from_inputs: pick(&datasets, &from_inputs),
            to_outputs: pick(&datasets, &to_outputs),
            node_namespaces: pick(&spaces, &namespaces),
        };
        let mut expected: BTreeSet<String> = names(&p);
        let mut and = |q: Pipeline| expected = expected.intersection(&names(&q)).cloned().collect();
        if !f.tags.is_empty() { and(p.only_nodes_with_tags(&f.tags)); }
        if !f.node_names.is_empty() { and(p.only_nodes(&f.node_names).unwrap()); }
        if !f.from_nodes.is_empty() { and(p.from_nodes(&f.from_nodes).unwrap()); }
        if !f.to_nodes.is_empty() { and(p.to_nodes(&f.to_nodes).unwrap()); }
        if !f.from_inputs.is_empty() { and(p.from_inputs(&f.from_inputs).unwrap()); }
        if !f.to_outputs.is_empty() { and(p.to_outputs(&f.to_outputs).unwrap()); }
        if !f.node_namespaces.is_empty() { and(p.only_nodes_with_namespaces(&f.node_namespaces).unwrap()); }
        match p.filter(&f) {
            Ok(q) => {
                prop_assert_eq!(names(&q), expected.clone());
                // Same relative order as in the original pipeline's layering is not
                // required, but the result must equal a fresh pipeline of those nodes.
                let fresh = Pipeline::new(q.nodes().to_vec()).unwrap();
                prop_assert_eq!(ordered(&fresh), ordered(&q));
            }
            Err(PipelineError::EmptyAfterFilter { .. }) => prop_assert!(expected.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn set_laws_on_node_names(d in dag(25), a in prop::collection::vec(any::<bool>(), 25), b in prop::collection::vec(any::<bool>(), 25)) {
        let sub = |mask: &[bool]| Pipeline::new(d.nodes.iter().enumerate().filter(|(i, _)| mask[*i]).map(|(_, n)| n.clone()).collect::<Vec<_>>()).unwrap();
        let (pa, pb) = (sub(&a), sub(&b));
        let (na, nb) = (names(&pa), names(&pb));
        let union = (&pa | &pb).unwrap();
        prop_assert_eq!(names(&union), na.union(&nb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(&union, &(&pb + &pa).unwrap());
        let inter = &pa & &pb;
        prop_assert_eq!(names(&inter), na.intersection(&nb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(&inter, &(&pb & &pa));
        let diff = &pa - &pb;
        prop_assert_eq!(names(&diff), na.difference(&nb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(&(&diff | &inter).unwrap(), &pa);
        prop_assert!((&diff & &pb).is_empty());
        prop_assert_eq!(&(&pa | &pa).unwrap(), &pa);
        prop_assert_eq!(&(&pa & &pa), &pa);
        prop_assert!((&pa - &pa).is_empty());
        // Union order does not matter for the resulting order either.
        let all = Pipeline::new(d.nodes.clone()).unwrap();
        let whole = (&union | &(&all - &union)).unwrap();
        prop_assert_eq!(ordered(&whole), ordered(&all));
    }
}
