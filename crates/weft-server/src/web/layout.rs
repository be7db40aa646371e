//! A layered (Sugiyama-style) layout of a pipeline for the web page, drawn
//! as SVG on the server: longest-path layers (every edge goes down at least
//! one layer), barycentre ordering within layers, namespaces collapsible
//! into one box, node states (from a run) as CSS classes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use weft_pipeline::Pipeline;

/// Box width, height and the gaps between boxes and layers, in SVG units.
const BOX_W: f64 = 180.0;
const BOX_H: f64 = 30.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 64.0;
const MARGIN: f64 = 16.0;
/// Longest label drawn in a box (the full name is in its `<title>`).
const LABEL_CHARS: usize = 24;

/// Where each item of a graph goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The layer of each item (0 at the top).
    pub layer: Vec<usize>,
    /// The left edge of each item's box.
    pub x: Vec<f64>,
    /// The top edge of each item's box.
    pub y: Vec<f64>,
    /// How many layers there are.
    pub layers: usize,
    /// The drawing's width.
    pub width: f64,
    /// The drawing's height.
    pub height: f64,
}

/// Lays out `n` items joined by `edges` (`from → to`, indices below `n`;
/// others are ignored). Layers are longest paths from the sources; edges
/// that close a cycle (none in a pipeline; possible once namespaces are
/// collapsed) are dropped from the layering, lowest index first.
pub fn layered(n: usize, edges: &[(usize, usize)]) -> Layout {
    let edges: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a < n && b < n && a != b)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut parents = vec![Vec::new(); n];
    let mut children = vec![Vec::new(); n];
    for &(a, b) in &edges {
        parents[b].push(a);
        children[a].push(b);
    }
    // Kahn's algorithm; when it stalls on a cycle, the lowest unplaced item
    // is taken with the parents placed so far.
    let mut pending: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut placed = vec![false; n];
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).rev().collect();
    let mut done = 0;
    while done < n {
        let next = match ready.pop() {
            Some(i) => i,
            None => match (0..n).find(|&i| !placed[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if placed[next] {
            continue;
        }
        placed[next] = true;
        done += 1;
        layer[next] = parents[next]
            .iter()
            .filter(|&&p| placed[p] && p != next)
            .map(|&p| layer[p] + 1)
            .max()
            .unwrap_or(0);
        for &c in &children[next] {
            if !placed[c] {
                pending[c] = pending[c].saturating_sub(1);
                if pending[c] == 0 {
                    ready.push(c);
                }
            }
        }
    }
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for i in 0..n {
        rows[layer[i]].push(i);
    }
    // Barycentre ordering: down, up, down.
    let mut pos = vec![0.0f64; n];
    let set_pos = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (k, &i) in row.iter().enumerate() {
                pos[i] = k as f64 - (row.len() as f64 - 1.0) / 2.0;
            }
        }
    };
    set_pos(&rows, &mut pos);
    let sweep = |rows: &mut Vec<Vec<usize>>, pos: &mut Vec<f64>, down: bool| {
        let order: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in order {
            let neighbours = if down { &parents } else { &children };
            let mut keyed: Vec<(f64, usize)> = rows[l]
                .iter()
                .map(|&i| {
                    let ns = &neighbours[i];
                    let key = if ns.is_empty() {
                        pos[i]
                    } else {
                        ns.iter().map(|&j| pos[j]).sum::<f64>() / ns.len() as f64
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, i)| i).collect();
            let row = &rows[l];
            for (k, &i) in row.iter().enumerate() {
                pos[i] = k as f64 - (row.len() as f64 - 1.0) / 2.0;
            }
        }
    };
    sweep(&mut rows, &mut pos, true);
    sweep(&mut rows, &mut pos, false);
    sweep(&mut rows, &mut pos, true);
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let width = 2.0 * MARGIN + (widest * (BOX_W + GAP_X) - GAP_X).max(BOX_W);
    let height = 2.0 * MARGIN + (layers as f64 * (BOX_H + GAP_Y) - GAP_Y).max(BOX_H);
    let mut x = vec![0.0; n];
    let mut y = vec![0.0; n];
    for (l, row) in rows.iter().enumerate() {
        let row_w = row.len() as f64 * (BOX_W + GAP_X) - GAP_X;
        let left = (width - row_w) / 2.0;
        for (k, &i) in row.iter().enumerate() {
            x[i] = left + k as f64 * (BOX_W + GAP_X);
            y[i] = MARGIN + l as f64 * (BOX_H + GAP_Y);
        }
    }
    Layout {
        layer,
        x,
        y,
        layers,
        width,
        height,
    }
}

/// One box of the drawing: a node, or a collapsed namespace.
#[derive(Clone, Debug)]
struct Item {
    /// The node's full name, or the namespace.
    name: String,
    /// A collapsed namespace's node count (`None` for a node).
    group: Option<usize>,
    state: Option<String>,
}

/// What the SVG of a pipeline shows.
#[derive(Clone, Debug, Default)]
pub struct Drawing {
    /// The SVG document.
    pub svg: String,
    /// Boxes drawn (nodes plus collapsed namespaces).
    pub boxes: usize,
    /// Nodes of the pipeline drawn (inside collapsed namespaces included).
    pub nodes: usize,
    /// Edges drawn.
    pub edges: usize,
}

/// The namespace of `ns` (a node's namespace) that `collapse` folds it
/// into: the shortest collapsed prefix.
fn collapsed_into<'a>(ns: Option<&str>, collapse: &'a BTreeSet<String>) -> Option<&'a str> {
    let ns = ns?;
    collapse
        .iter()
        .filter(|c| ns == c.as_str() || ns.starts_with(&format!("{c}.")))
        .min_by_key(|c| c.len())
        .map(String::as_str)
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn label(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let head: String = s.chars().take(LABEL_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// A group's state from its nodes': failed, running, pending (some not
/// run), else the one state they share.
fn group_state<'a>(states: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let all: Vec<Option<&str>> = states.collect();
    for s in ["failed", "running"] {
        if all.contains(&Some(s)) {
            return Some(s.into());
        }
    }
    if all.iter().all(|s| *s == Some("succeeded")) && !all.is_empty() {
        return Some("succeeded".into());
    }
    if all.iter().any(Option::is_some) {
        return Some("partial".into());
    }
    None
}

/// Draws `pipeline` with the namespaces in `collapse` folded into one box
/// each and node states (`succeeded`, `failed`, `running`, `pending`,
/// `excluded` by the run's filters) as
/// classes `state-…` on the boxes. Every box is a focusable `<g
/// class="node">` with `data-node` (or `data-namespace`) for the page.
pub fn draw(pipeline: &Pipeline, collapse: &BTreeSet<String>, states: &BTreeMap<String, String>) -> Drawing {
    let nodes = pipeline.nodes();
    let mut items: Vec<Item> = Vec::new();
    let mut item_of = Vec::with_capacity(nodes.len());
    let mut group_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut members: BTreeMap<usize, Vec<Option<&str>>> = BTreeMap::new();
    for node in nodes {
        let state = states.get(node.name()).map(String::as_str);
        match collapsed_into(node.namespace(), collapse) {
            Some(ns) => {
                let i = *group_index.entry(ns).or_insert_with(|| {
                    items.push(Item {
                        name: ns.to_string(),
                        group: Some(0),
                        state: None,
                    });
                    items.len() - 1
                });
                if let Some(g) = items[i].group.as_mut() {
                    *g += 1;
                }
                members.entry(i).or_default().push(state);
                item_of.push(i);
            }
            None => {
                items.push(Item {
                    name: node.name().to_string(),
                    group: None,
                    state: state.map(str::to_string),
                });
                item_of.push(items.len() - 1);
            }
        }
    }
    for (i, m) in members {
        items[i].state = group_state(m.into_iter());
    }
    let mut edges = BTreeSet::new();
    for (child, ps) in pipeline.parents().iter().enumerate() {
        for &p in ps {
            let (a, b) = (item_of[p], item_of[child]);
            if a != b {
                edges.insert((a, b));
            }
        }
    }
    let edges: Vec<(usize, usize)> = edges.into_iter().collect();
    let layout = layered(items.len(), &edges);
    let mut svg = String::with_capacity(200 + items.len() * 260 + edges.len() * 90);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="pipeline of {n} nodes in {l} layers" data-nodes="{n}" data-boxes="{b}" data-layers="{l}">"#,
        w = layout.width,
        h = layout.height,
        n = nodes.len(),
        b = items.len(),
        l = layout.layers,
    );
    svg.push_str(
        "<style>.edge{fill:none;stroke:#7a8499;stroke-width:1.2}.node rect{fill:#fff;stroke:#35405a;stroke-width:1.2}\
         .node text{font:12px sans-serif;fill:#111}.node.ns rect{fill:#e8ecf7;stroke-dasharray:4 2}\
         .state-succeeded rect{fill:#d5f2dc;stroke:#1d7a36}.state-failed rect{fill:#fbd5d5;stroke:#b00020;stroke-width:3}\
         .state-running rect{fill:#fff1c2;stroke:#8a6100}.state-partial rect{fill:#eef0f3}.state-pending rect{fill:#f3f4f6;stroke:#8891a5}.state-excluded{opacity:.4}</style>",
    );
    svg.push_str(r#"<g class="edges">"#);
    for &(a, b) in &edges {
        let (x1, y1) = (layout.x[a] + BOX_W / 2.0, layout.y[a] + BOX_H);
        let (x2, y2) = (layout.x[b] + BOX_W / 2.0, layout.y[b]);
        let ym = (y1 + y2) / 2.0;
        let _ = write!(
            svg,
            r#"<path class="edge" d="M{x1:.1} {y1:.1}C{x1:.1} {ym:.1},{x2:.1} {ym:.1},{x2:.1} {y2:.1}"/>"#
        );
    }
    svg.push_str("</g><g class=\"nodes\">");
    for (i, item) in items.iter().enumerate() {
        let state = item
            .state
            .as_deref()
            .map(|s| format!(" state-{}", escape(s)))
            .unwrap_or_default();
        let name = escape(&item.name);
        let (kind, attr, text, title) = match item.group {
            Some(k) => (
                " ns",
                format!(r#"data-namespace="{name}""#),
                format!("▸ {} ({k})", label(&item.name)),
                format!("namespace {} ({k} nodes, collapsed)", item.name),
            ),
            None => {
                let short = nodes
                    .iter()
                    .find(|n| n.name() == item.name)
                    .map_or(item.name.as_str(), |n| n.short_name());
                (
                    "",
                    format!(r#"data-node="{name}""#),
                    label(short),
                    match &item.state {
                        Some(s) => format!("{} ({s})", item.name),
                        None => item.name.clone(),
                    },
                )
            }
        };
        let _ = write!(
            svg,
            r#"<g class="node{kind}{state}" {attr} tabindex="0" transform="translate({x:.1},{y:.1})"><title>{title}</title><rect width="{BOX_W}" height="{BOX_H}" rx="5"/><text x="8" y="19">{text}</text></g>"#,
            x = layout.x[i],
            y = layout.y[i],
            title = escape(&title),
            text = escape(&text),
        );
    }
    svg.push_str("</g></svg>");
    Drawing {
        svg,
        boxes: items.len(),
        nodes: nodes.len(),
        edges: edges.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random DAG of `n` items: each item has up to 3 parents among the
    /// items before it (a fixed linear congruential sequence).
    fn dag(n: usize) -> Vec<(usize, usize)> {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut edges = Vec::new();
        for b in 1..n {
            for _ in 0..(next() % 4) {
                let a = b.saturating_sub(1 + next() % 40.min(b));
                edges.push((a, b));
            }
        }
        edges
    }

    #[test]
    fn every_edge_goes_down_a_layer_and_boxes_do_not_overlap() {
        for n in [1, 2, 10, 200] {
            let edges = dag(n);
            let l = layered(n, &edges);
            for &(a, b) in &edges {
                assert!(
                    l.layer[b] > l.layer[a],
                    "edge {a}->{b}: layers {} -> {}",
                    l.layer[a],
                    l.layer[b]
                );
                assert!(l.y[b] > l.y[a]);
            }
            for i in 0..n {
                for j in i + 1..n {
                    let apart = (l.x[i] - l.x[j]).abs() >= BOX_W || (l.y[i] - l.y[j]).abs() >= BOX_H;
                    assert!(apart, "boxes {i} and {j} overlap");
                }
                assert!(l.x[i] >= 0.0 && l.x[i] + BOX_W <= l.width);
                assert!(l.y[i] >= 0.0 && l.y[i] + BOX_H <= l.height);
            }
        }
    }

    #[test]
    fn layers_are_longest_paths() {
        // 0 -> 1 -> 2 and 0 -> 2: 2 is in layer 2, not 1.
        let l = layered(3, &[(0, 1), (1, 2), (0, 2)]);
        assert_eq!(l.layer, vec![0, 1, 2]);
        assert_eq!(l.layers, 3);
        // Two sources side by side in layer 0.
        let l = layered(2, &[]);
        assert_eq!(l.layer, vec![0, 0]);
        assert_ne!(l.x[0], l.x[1]);
    }

    #[test]
    fn a_cycle_still_gets_a_layout() {
        let l = layered(3, &[(0, 1), (1, 2), (2, 0)]);
        assert_eq!(l.layer.len(), 3);
        let mut layers = l.layer.clone();
        layers.sort_unstable();
        layers.dedup();
        assert_eq!(layers.len(), 3, "a 3-cycle is drawn as a chain: {:?}", l.layer);
    }

    #[test]
    fn a_thousand_node_graph_lays_out_quickly() {
        let edges = dag(1000);
        let start = std::time::Instant::now();
        let l = layered(1000, &edges);
        let took = start.elapsed();
        // Printed, not asserted: timings vary with the machine's load.
        println!(
            "1,000 items, {} edges, {} layers: laid out in {took:?} (bound expected: well under 1 s)",
            edges.len(),
            l.layers
        );
        for &(a, b) in &edges {
            assert!(l.layer[b] > l.layer[a]);
        }
    }

    #[test]
    fn labels_are_escaped_and_shortened() {
        assert_eq!(escape("<a&\"b'>"), "&lt;a&amp;&quot;b&#39;&gt;");
        assert_eq!(label("short"), "short");
        assert_eq!(label(&"x".repeat(40)).chars().count(), LABEL_CHARS);
    }

    #[test]
    fn collapsing_picks_the_shortest_namespace() {
        let c: BTreeSet<String> = ["a".to_string(), "a.b".to_string()].into();
        assert_eq!(collapsed_into(Some("a.b.c"), &c), Some("a"));
        assert_eq!(collapsed_into(Some("ab"), &c), None);
        assert_eq!(collapsed_into(None, &c), None);
    }
}
