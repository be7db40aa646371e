//! Pipeline filters (Kedro's `only_nodes*`, `from_*`, `to_*` and `filter`).
//!
//! Every filter returns a new [`Pipeline`]. Filters that take names fail
//! when a name is unknown, and the error names every unknown name (with a
//! "did you mean" for namespaced nodes: `train` → `ds.train`). Dataset
//! filters are transcoding-aware: a bare name matches every `name@format`,
//! a transcoded name only itself.

use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::pipeline::Pipeline;
use crate::registry::edit_distance;
use crate::transcode;

/// Node filters, as `weft run` flags name them. [`Pipeline::filter`] applies
/// each given (non-empty) filter to the original pipeline and intersects the
/// results.
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

    /// The filters that are set, as `name=[a, b]` pairs (for messages).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| format!("{name}=[{}]", v.join(", ")))
            .collect();
        if parts.is_empty() {
            "no filters".to_string()
        } else {
            parts.join(", ")
        }
    }

    fn fields(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("tags", &self.tags),
            ("from_nodes", &self.from_nodes),
            ("to_nodes", &self.to_nodes),
            ("node_names", &self.node_names),
            ("from_inputs", &self.from_inputs),
            ("to_outputs", &self.to_outputs),
            ("node_namespaces", &self.node_namespaces),
        ]
    }
}

/// Whether a node namespace is `ns` or nested below it.
pub(crate) fn in_namespace(node_namespace: Option<&str>, ns: &str) -> bool {
    node_namespace.is_some_and(|own| {
        own == ns || (own.len() > ns.len() && own.starts_with(ns) && own.as_bytes()[ns.len()] == b'.')
    })
}

/// Up to five names from `candidates` that look like `wanted`: names that
/// end with `.wanted` (a namespaced node) first, then close spellings.
pub(crate) fn suggest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Vec<String> {
    let suffix = format!(".{wanted}");
    let mut found: Vec<String> = candidates
        .clone()
        .into_iter()
        .filter(|c| c.ends_with(&suffix))
        .map(str::to_string)
        .collect();
    found.sort();
    if found.is_empty() {
        let limit = (wanted.chars().count() / 3).clamp(1, 3);
        let mut close: Vec<(usize, &str)> = candidates
            .into_iter()
            .map(|c| (edit_distance(c, wanted), c))
            .filter(|(d, _)| *d <= limit)
            .collect();
        close.sort();
        found = close.into_iter().map(|(_, c)| c.to_string()).collect();
    }
    found.dedup();
    found.truncate(5);
    found
}

impl Pipeline {
    /// Indices of the named nodes; every unknown name is an error.
    fn node_mask<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<bool>, PipelineError> {
        let mut keep = vec![false; self.len()];
        let mut unknown = Vec::new();
        let mut suggestions = Vec::new();
        for name in names {
            let name = name.as_ref();
            match self.index_of(name) {
                Some(i) => keep[i] = true,
                None => {
                    if !unknown.iter().any(|u| u == name) {
                        unknown.push(name.to_string());
                        suggestions.extend(suggest(name, self.nodes().iter().map(|n| n.name())));
                    }
                }
            }
        }
        if unknown.is_empty() {
            Ok(keep)
        } else {
            suggestions.sort();
            suggestions.dedup();
            Err(PipelineError::UnknownNodes {
                names: unknown,
                suggestions,
            })
        }
    }

    /// Nodes reading (`consumers`) or writing the datasets, directly. A
    /// dataset no node names is an error; a bare name matches every
    /// `name@format`.
    fn dataset_mask<S: AsRef<str>>(
        &self,
        datasets: &[S],
        consumers: bool,
    ) -> Result<Vec<bool>, PipelineError> {
        let inner = &self.inner;
        let mut keep = vec![false; self.len()];
        let mut unknown = Vec::new();
        for ds in datasets {
            let ds = ds.as_ref();
            let base = transcode::strip(ds);
            let readers = inner.consumers.get(base).map(Vec::as_slice).unwrap_or(&[]);
            let writer = inner.producers.get(base).copied();
            let exists = if transcode::is_transcoded(ds) {
                readers.iter().chain(writer.as_ref()).any(|&i| {
                    let n = &inner.nodes[i];
                    n.inputs().iter().chain(n.outputs()).any(|d| d == ds)
                })
            } else {
                !readers.is_empty() || writer.is_some()
            };
            if !exists {
                if !unknown.iter().any(|u| u == ds) {
                    unknown.push(ds.to_string());
                }
                continue;
            }
            if consumers {
                for &i in readers {
                    if inner.nodes[i].inputs().iter().any(|d| transcode::matches(ds, d)) {
                        keep[i] = true;
                    }
                }
            } else if let Some(i) = writer
                && inner.nodes[i].outputs().iter().any(|d| transcode::matches(ds, d))
            {
                keep[i] = true;
            }
        }
        if unknown.is_empty() {
            Ok(keep)
        } else {
            Err(PipelineError::UnknownDatasets { names: unknown })
        }
    }

    /// Extends the flags to everything downstream (or upstream).
    fn closure(&self, mut keep: Vec<bool>, downstream: bool) -> Vec<bool> {
        let edges = if downstream {
            self.children()
        } else {
            self.parents()
        };
        let mut stack: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if !keep[j] {
                    keep[j] = true;
                    stack.push(j);
                }
            }
        }
        keep
    }

    fn tag_mask<S: AsRef<str>>(&self, tags: &[S]) -> Vec<bool> {
        self.nodes()
            .iter()
            .map(|n| tags.iter().any(|t| n.tags().contains(t.as_ref())))
            .collect()
    }

    fn namespace_mask<S: AsRef<str>>(&self, namespaces: &[S]) -> Result<Vec<bool>, PipelineError> {
        let mut keep = vec![false; self.len()];
        let mut unknown = Vec::new();
        for ns in namespaces {
            let ns = ns.as_ref();
            let mut any = false;
            for (i, n) in self.nodes().iter().enumerate() {
                if in_namespace(n.namespace(), ns) {
                    keep[i] = true;
                    any = true;
                }
            }
            if !any && !unknown.iter().any(|u| u == ns) {
                unknown.push(ns.to_string());
            }
        }
        if unknown.is_empty() {
            Ok(keep)
        } else {
            Err(PipelineError::UnknownNamespaces { names: unknown })
        }
    }

    /// Exactly the named nodes (full names, including namespaces).
    pub fn only_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.node_mask(names)?))
    }

    /// Nodes with any of the tags.
    pub fn only_nodes_with_tags<S: AsRef<str>>(&self, tags: &[S]) -> Pipeline {
        self.subset(&self.tag_mask(tags))
    }

    /// Nodes whose namespace is one of `namespaces` or nested below one
    /// (`ds` selects `ds` and `ds.inner`, not `dsx`). A namespace without
    /// nodes is an error.
    pub fn only_nodes_with_namespaces<S: AsRef<str>>(
        &self,
        namespaces: &[S],
    ) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.namespace_mask(namespaces)?))
    }

    /// The named nodes and everything downstream of them.
    pub fn from_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.closure(self.node_mask(names)?, true)))
    }

    /// The named nodes and everything upstream of them.
    pub fn to_nodes<S: AsRef<str>>(&self, names: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.closure(self.node_mask(names)?, false)))
    }

    /// Nodes reading the datasets, and everything downstream of them.
    pub fn from_inputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.closure(self.dataset_mask(datasets, true)?, true)))
    }

    /// Nodes writing the datasets, and everything upstream of them.
    pub fn to_outputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.closure(self.dataset_mask(datasets, false)?, false)))
    }

    /// Nodes reading any of the datasets directly.
    pub fn only_nodes_with_inputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.dataset_mask(datasets, true)?))
    }

    /// Nodes writing any of the datasets directly.
    pub fn only_nodes_with_outputs<S: AsRef<str>>(&self, datasets: &[S]) -> Result<Pipeline, PipelineError> {
        Ok(self.subset(&self.dataset_mask(datasets, false)?))
    }

    /// Applies each given filter to this pipeline and intersects the results
    /// (Kedro's `Pipeline.filter`). Unknown names fail as in the single
    /// filters (checked in the order tags, from_nodes, to_nodes, node_names,
    /// from_inputs, to_outputs, node_namespaces); an empty result is an
    /// error naming the filters that were applied.
    pub fn filter(&self, f: &PipelineFilter) -> Result<Pipeline, PipelineError> {
        let mut keep = vec![true; self.len()];
        let mut and = |mask: Vec<bool>| {
            for (k, m) in keep.iter_mut().zip(mask) {
                *k &= m;
            }
        };
        if !f.tags.is_empty() {
            and(self.tag_mask(&f.tags));
        }
        if !f.from_nodes.is_empty() {
            and(self.closure(self.node_mask(&f.from_nodes)?, true));
        }
        if !f.to_nodes.is_empty() {
            and(self.closure(self.node_mask(&f.to_nodes)?, false));
        }
        if !f.node_names.is_empty() {
            and(self.node_mask(&f.node_names)?);
        }
        if !f.from_inputs.is_empty() {
            and(self.closure(self.dataset_mask(&f.from_inputs, true)?, true));
        }
        if !f.to_outputs.is_empty() {
            and(self.closure(self.dataset_mask(&f.to_outputs, false)?, false));
        }
        if !f.node_namespaces.is_empty() {
            and(self.namespace_mask(&f.node_namespaces)?);
        }
        if !keep.iter().any(|&k| k) {
            return Err(PipelineError::EmptyAfterFilter {
                filters: f.describe(),
            });
        }
        Ok(self.subset(&keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefix_match() {
        assert!(in_namespace(Some("ds"), "ds"));
        assert!(in_namespace(Some("ds.inner"), "ds"));
        assert!(!in_namespace(Some("dsx"), "ds"));
        assert!(!in_namespace(Some("ds"), "ds.inner"));
        assert!(!in_namespace(None, "ds"));
    }

    #[test]
    fn suggestions_prefer_namespaced_names() {
        let names = ["ds.train", "ml.train", "trains", "other"];
        assert_eq!(suggest("train", names), ["ds.train", "ml.train"]);
        assert_eq!(suggest("trans", names), ["trains"]);
        assert!(suggest("zzz", names).is_empty());
    }

    #[test]
    fn describe_lists_set_filters() {
        let f = PipelineFilter {
            tags: vec!["a".into(), "b".into()],
            to_outputs: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(f.describe(), "tags=[a, b], to_outputs=[x]");
        assert!(!f.is_empty());
        assert!(PipelineFilter::default().is_empty());
        assert_eq!(PipelineFilter::default().describe(), "no filters");
        let back: PipelineFilter = serde_json::from_str(r#"{"tags":["a","b"],"to_outputs":["x"]}"#).unwrap();
        assert_eq!(back, f);
    }
}
