//! Run metrics: numbers worth comparing across runs, recorded with every run.
//!
//! A metric is a numeric free output (`r2: 0.91`), a numeric leaf of a free
//! output that is a map (`scores.r2`), or a numeric leaf of a dataset
//! declared in `weft.toml`'s `[run] metrics` (loaded after the run, so a
//! versioned metrics file gives this run's version). Node timings are
//! recorded beside them (`node_timings`); `weft runs compare` shows both.

use std::collections::BTreeMap;

use serde_json::Value;
use weft_catalog::Catalog;
use weft_pipeline::Data;

/// Leaves deeper than this are not metrics (a model's weights are not).
const MAX_DEPTH: usize = 3;
/// At most this many metrics per dataset.
const MAX_PER_DATASET: usize = 200;

/// Collects the metrics of a finished run.
pub(crate) fn collect(
    outputs: &BTreeMap<String, Data>,
    catalog: &Catalog,
    declared: &[String],
) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    for (name, data) in outputs {
        if let Some(value) = small_numeric(data) {
            flatten(name, &value, 0, &mut metrics);
        }
    }
    for name in declared {
        if metrics
            .keys()
            .any(|k| k == name || k.starts_with(&format!("{name}.")))
        {
            continue;
        }
        match catalog.load(name, None).map(|d| d.to_json()) {
            Ok(Ok(value)) => flatten(name, &value, 0, &mut metrics),
            Ok(Err(e)) => tracing::warn!("metrics dataset `{name}` is not JSON-like: {e}"),
            Err(e) => tracing::warn!("could not load metrics dataset `{name}`: {e}"),
        }
    }
    metrics
}

/// The JSON of an output that can hold metrics: a number, a JSON value or a
/// map of numbers. Anything else (tables, models) is never serialized here,
/// so a large output costs nothing.
fn small_numeric(data: &Data) -> Option<Value> {
    macro_rules! number {
        ($($t:ty),*) => {$(
            if let Some(x) = data.downcast_ref::<$t>() {
                return serde_json::to_value(x).ok();
            }
        )*};
    }
    number!(f64, f32, i64, i32, u64, u32, usize);
    if let Some(v) = data.downcast_ref::<Value>() {
        return matches!(v, Value::Number(_) | Value::Object(_)).then(|| v.clone());
    }
    if let Some(m) = data.downcast_ref::<BTreeMap<String, f64>>() {
        return serde_json::to_value(m).ok();
    }
    if let Some(m) = data.downcast_ref::<std::collections::HashMap<String, f64>>() {
        return serde_json::to_value(m).ok();
    }
    None
}

fn flatten(prefix: &str, value: &Value, depth: usize, out: &mut BTreeMap<String, f64>) {
    match value {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                out.insert(prefix.to_string(), x);
            }
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map.iter().take(MAX_PER_DATASET) {
                flatten(&format!("{prefix}.{k}"), v, depth + 1, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_numeric_leaves_are_metrics() {
        let mut out = BTreeMap::new();
        flatten(
            "m",
            &serde_json::json!({"r2": 0.9, "n": 3, "name": "x", "deep": {"a": 1}}),
            0,
            &mut out,
        );
        flatten("score", &serde_json::json!(2.5), 0, &mut out);
        flatten("rows", &serde_json::json!([1, 2]), 0, &mut out);
        let expected: BTreeMap<String, f64> =
            [("m.deep.a", 1.0), ("m.n", 3.0), ("m.r2", 0.9), ("score", 2.5)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        assert_eq!(out, expected);
    }
}
