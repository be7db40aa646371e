//! `weft viz`: Mermaid, DOT and JSON graphs.
//!
//! Graph ids are positional and never derived from names (`n0`, `n1`, ...
//! for nodes in topological order, `d0`, `d1`, ... for datasets in name
//! order), so two names can never collide; the real name is the label,
//! escaped for the target format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;
use weft_pipeline::Pipeline;
use weft_session::ProjectCode;

use super::inspect::open_for_inspection;
use super::*;
use crate::error::EXIT_OK;

pub(super) fn viz(edge: &Edge<'_>, args: &VizArgs, code: ProjectCode, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let session = open_for_inspection(edge, &args.session, code)?;
    let pipeline = session.select_pipeline(&filter_config(&args.filter))?;
    let graph = Graph::of(&pipeline);
    let format = if args.json { VizFormat::Json } else { args.format };
    match format {
        VizFormat::Mermaid => write!(io.out, "{}", graph.mermaid())?,
        VizFormat::Dot => write!(io.out, "{}", graph.dot())?,
        VizFormat::Json => write_json(io.out, &graph.json())?,
    }
    Ok(EXIT_OK)
}

/// A pipeline as nodes, datasets and edges, with positional ids.
pub(super) struct Graph {
    /// `(name, func)` per node; the id is `n<index>`.
    nodes: Vec<(String, String)>,
    /// Dataset names; the id is `d<index>`.
    datasets: Vec<String>,
    /// `(from, to)` ids.
    edges: Vec<(String, String)>,
}

impl Graph {
    pub(super) fn of(p: &Pipeline) -> Graph {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for n in p.nodes() {
            for d in n.inputs().iter().chain(n.outputs()) {
                names.insert(d.as_str(), 0);
            }
        }
        for (i, index) in names.values_mut().enumerate() {
            *index = i;
        }
        let mut edges = Vec::new();
        for (i, n) in p.nodes().iter().enumerate() {
            for d in n.inputs() {
                edges.push((format!("d{}", names[d.as_str()]), format!("n{i}")));
            }
            for d in n.outputs() {
                edges.push((format!("n{i}"), format!("d{}", names[d.as_str()])));
            }
        }
        Graph {
            nodes: p
                .nodes()
                .iter()
                .map(|n| (n.name().to_string(), n.func_name().to_string()))
                .collect(),
            datasets: names.keys().map(|s| s.to_string()).collect(),
            edges,
        }
    }

    pub(super) fn mermaid(&self) -> String {
        self.text(
            "flowchart TD\n",
            |i, name| format!("n{i}[\"{}\"]", mermaid_label(name)),
            |i, name| format!("d{i}[(\"{}\")]", mermaid_label(name)),
            |from, to| format!("{from} --> {to}"),
            "",
        )
    }

    pub(super) fn dot(&self) -> String {
        self.text(
            "digraph pipeline {\n    rankdir=TB;\n",
            |i, name| format!("n{i} [shape=box, label=\"{}\"];", dot_label(name)),
            |i, name| format!("d{i} [shape=cylinder, label=\"{}\"];", dot_label(name)),
            |from, to| format!("{from} -> {to};"),
            "}\n",
        )
    }

    /// A text graph: `head`, one indented line per node, dataset and edge
    /// (in that order) as the closures write them, then `tail`.
    fn text(
        &self,
        head: &str,
        node: impl Fn(usize, &str) -> String,
        dataset: impl Fn(usize, &str) -> String,
        edge: impl Fn(&str, &str) -> String,
        tail: &str,
    ) -> String {
        let mut out = String::from(head);
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (name, _))| node(i, name.as_str()));
        let datasets = self
            .datasets
            .iter()
            .enumerate()
            .map(|(i, name)| dataset(i, name.as_str()));
        let edges = self
            .edges
            .iter()
            .map(|(from, to)| edge(from.as_str(), to.as_str()));
        for line in nodes.chain(datasets).chain(edges) {
            let _ = writeln!(out, "    {line}");
        }
        out.push_str(tail);
        out
    }

    pub(super) fn json(&self) -> serde_json::Value {
        json!({
            "nodes": self.nodes.iter().enumerate()
                .map(|(i, (name, func))| json!({"id": format!("n{i}"), "name": name, "func": func}))
                .collect::<Vec<_>>(),
            "datasets": self.datasets.iter().enumerate()
                .map(|(i, name)| json!({"id": format!("d{i}"), "name": name}))
                .collect::<Vec<_>>(),
            "edges": self.edges.iter()
                .map(|(from, to)| json!({"from": from, "to": to}))
                .collect::<Vec<_>>(),
        })
    }
}

/// A Mermaid label inside `"..."`: every character outside a small safe set
/// becomes an entity code (`#34;` for `"`), so quotes, brackets, `|`, `#`,
/// HTML and newlines cannot end the label or change the graph.
fn mermaid_label(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | ':' | '@' | '/' | '+' | ',' | '=') {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", u32::from(c));
        }
    }
    out
}

/// A DOT label inside `"..."`: backslashes and quotes escaped, line breaks
/// as `\n`, other control characters dropped.
fn dot_label(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_pipeline::node;

    fn pass(x: &i64) -> i64 {
        *x
    }

    fn tricky() -> Pipeline {
        Pipeline::new([
            node(pass, ["in"], ["out-1"]).name("a-b").build().unwrap(),
            node(pass, ["in"], ["out_1"]).name("a_b").build().unwrap(),
            node(pass, ["out-1"], ["x\"y|z[1]\nnext"])
                .name("say \"hi\" [x] |y| #z")
                .build()
                .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn names_that_sanitise_alike_stay_distinct_nodes() {
        let g = Graph::of(&tricky());
        let m = g.mermaid();
        // Every node and dataset is declared once, under its own id.
        let declared: Vec<&str> = m
            .lines()
            .skip(1)
            .filter(|l| !l.contains("-->"))
            .map(|l| l.trim().split(['[']).next().unwrap())
            .collect();
        assert_eq!(declared, ["n0", "n1", "n2", "d0", "d1", "d2", "d3"], "{m}");
        assert!(m.contains("n0[\"a-b\"]") && m.contains("n1[\"a_b\"]"), "{m}");
        assert!(
            m.contains("d1[(\"out-1\")]") && m.contains("d2[(\"out_1\")]"),
            "{m}"
        );
        let d = g.dot();
        assert!(
            d.contains("n0 [shape=box, label=\"a-b\"];") && d.contains("n1 [shape=box, label=\"a_b\"];"),
            "{d}"
        );
        assert_eq!(d.matches("shape=box").count(), 3, "{d}");
        assert_eq!(d.matches("shape=cylinder").count(), 4, "{d}");
    }

    #[test]
    fn labels_are_escaped() {
        let g = Graph::of(&tricky());
        let m = g.mermaid();
        assert!(
            m.contains("n2[\"say #34;hi#34; #91;x#93; #124;y#124; #35;z\"]"),
            "{m}"
        );
        assert!(m.contains("d3[(\"x#34;y#124;z#91;1#93;#10;next\")]"), "{m}");
        // One line per declaration and edge: no raw newline from a name.
        assert_eq!(m.lines().count(), 1 + 3 + 4 + 6, "{m}");
        let d = g.dot();
        assert!(
            d.contains(r#"n2 [shape=box, label="say \"hi\" [x] |y| #z"];"#),
            "{d}"
        );
        assert!(
            d.contains(r#"d3 [shape=cylinder, label="x\"y|z[1]\nnext"];"#),
            "{d}"
        );
        assert_eq!(d.lines().count(), 2 + 3 + 4 + 6 + 1, "{d}");
    }

    #[test]
    fn json_graph_names_every_node_and_edge() {
        let g = Graph::of(&tricky()).json();
        assert_eq!(
            g["nodes"][0],
            json!({"id": "n0", "name": "a-b", "func": g["nodes"][0]["func"]})
        );
        assert_eq!(g["datasets"].as_array().unwrap().len(), 4);
        assert_eq!(g["edges"].as_array().unwrap().len(), 6);
        assert_eq!(g["edges"][0], json!({"from": "d0", "to": "n0"}));
    }
}
