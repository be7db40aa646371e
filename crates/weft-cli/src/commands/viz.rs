//! `weft viz`: Mermaid and DOT graphs.

use std::collections::BTreeSet;

use weft_pipeline::Pipeline;

pub(super) fn ident(s: &str) -> String {
    let mut out = String::from("n_");
    for c in s.chars() {
        out.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    out
}

pub(super) fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart TD\n");
    let mut datasets = BTreeSet::new();
    for n in p.nodes() {
        out.push_str(&format!("    {}[\"{}\"]\n", ident(n.name()), n.name()));
        datasets.extend(n.inputs().iter().cloned());
        datasets.extend(n.outputs().iter().cloned());
    }
    for d in &datasets {
        out.push_str(&format!("    {}[(\"{}\")]\n", ident(&format!("ds {d}")), d));
    }
    for n in p.nodes() {
        for i in n.inputs() {
            out.push_str(&format!(
                "    {} --> {}\n",
                ident(&format!("ds {i}")),
                ident(n.name())
            ));
        }
        for o in n.outputs() {
            out.push_str(&format!(
                "    {} --> {}\n",
                ident(n.name()),
                ident(&format!("ds {o}"))
            ));
        }
    }
    out
}

pub(super) fn dot(p: &Pipeline) -> String {
    let mut out = String::from("digraph pipeline {\n    rankdir=TB;\n");
    let mut datasets = BTreeSet::new();
    for n in p.nodes() {
        out.push_str(&format!("    \"{}\" [shape=box];\n", n.name()));
        datasets.extend(n.inputs().iter().cloned());
        datasets.extend(n.outputs().iter().cloned());
    }
    for d in &datasets {
        out.push_str(&format!("    \"ds:{d}\" [shape=cylinder, label=\"{d}\"];\n"));
    }
    for n in p.nodes() {
        for i in n.inputs() {
            out.push_str(&format!("    \"ds:{i}\" -> \"{}\";\n", n.name()));
        }
        for o in n.outputs() {
            out.push_str(&format!("    \"{}\" -> \"ds:{o}\";\n", n.name()));
        }
    }
    out.push_str("}\n");
    out
}
