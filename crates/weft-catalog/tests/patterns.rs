//! Dataset factory patterns: Kedro's precedence, as a table and as a property.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry, Pattern};
use weft_pipeline::Data;

fn catalog(entries: Value) -> Catalog {
    let cfg = CatalogConfig::parse(&entries, &json!({}), &DatasetTypeRegistry::with_builtins()).unwrap();
    cfg.build(&BuildOptions {
        project_dir: "/nonexistent-project".into(),
        save_version: "v".into(),
        ..Default::default()
    })
    .unwrap()
}

fn entry(path: &str) -> Value {
    json!({"type": "json.JSONDataset", "filepath": path})
}

/// (catalog pattern names, dataset name, expected pattern or None for explicit/memory)
#[test]
fn precedence_table() {
    let cases: &[(&[&str], &str, Option<&str>)] = &[
        // More literal characters win.
        (&["{a}_csv", "{a}s_csv"], "cars_csv", Some("{a}s_csv")),
        // Same literal count: more placeholders first (Kedro's order).
        (&["{a}.x.y", "{a}.{b}.y"], "n.x.y", Some("{a}.x.y")),
        (&["{a}_{b}", "{c}__"], "p_q", Some("{a}_{b}")),
        (&["{x}-{y}", "a{x}"], "a-b", Some("{x}-{y}")),
        // Same literal and placeholder count: alphabetical.
        (&["{b}_1", "{a}_1"], "z_1", Some("{a}_1")),
        (&["x{a}", "{a}x"], "xx", Some("x{a}")),
        // The catch-all comes last, after any specific pattern.
        (&["{default}", "{n}_raw"], "cars_raw", Some("{n}_raw")),
        (&["{default}", "{n}_raw"], "cars", Some("{default}")),
        // No pattern matches: a memory dataset.
        (&["{n}_raw"], "cars", None),
        // Placeholders match non-empty text only.
        (&["{n}_raw"], "_raw", None),
        (&["a_{n}"], "a_", None),
        (&["{n}_{m}"], "a_", None),
        (&["{n}_raw", "{default}"], "_raw", Some("{default}")),
        // Namespaced names.
        (
            &["{namespace}.{name}", "{namespace}.int_{name}"],
            "ns.int_cars",
            Some("{namespace}.int_{name}"),
        ),
    ];
    for (patterns, name, expected) in cases {
        let entries: serde_json::Map<String, Value> = patterns
            .iter()
            .map(|p| (p.to_string(), entry("data/x.json")))
            .collect();
        let c = catalog(Value::Object(entries));
        let got = c.describe(name).and_then(|i| i.pattern);
        assert_eq!(got.as_deref(), *expected, "patterns {patterns:?}, name `{name}`");
        assert_eq!(c.contains(name), expected.is_some(), "{name}");
    }
}

#[test]
fn placeholders_are_substituted_everywhere_and_checked() {
    let c = catalog(json!({
        "{ns}.{name}": {"type": "csv.CSVDataset", "filepath": "data/{ns}/{name}.csv",
                         "load_args": {"delimiter": ";"}, "metadata": {"tags": ["{ns}"]}},
    }));
    let info = c.describe("raw.cars").unwrap();
    assert_eq!(info.filepath.as_deref(), Some("data/raw/cars.csv"));
    assert_eq!(info.type_name, "csv.CSVDataset");

    let err = CatalogConfig::parse(
        &json!({
            "{name}_a": {"type": "json.JSONDataset", "filepath": "data/{other}.json"},
            "{name}_b": {"type": "json.JSONDataset"},
            "{x}": entry("a.json"),
            "{y}": entry("b.json"),
        }),
        &json!({}),
        &DatasetTypeRegistry::with_builtins(),
    )
    .err()
    .unwrap();
    let CatalogError::Config { problems } = &err else {
        panic!("{err}")
    };
    let all = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(problems.len(), 3, "{all}");
    assert!(all.contains("`{name}_a`: placeholder `{other}`"), "{all}");
    assert!(all.contains("`{name}_b`: `filepath` is required"), "{all}");
    assert!(all.contains("only one catch-all pattern"), "{all}");
}

#[test]
fn materialization_is_cached_and_thread_safe() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CatalogConfig::parse(
        &json!({"{n}_mem": {"type": "MemoryDataset"}}),
        &json!({}),
        &DatasetTypeRegistry::with_builtins(),
    )
    .unwrap();
    let c = Arc::new(
        cfg.build(&BuildOptions {
            project_dir: dir.path().into(),
            save_version: "v".into(),
            ..Default::default()
        })
        .unwrap(),
    );
    // Many threads race to materialize the same name; one dataset wins and
    // every thread sees what any of them saved.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                assert!(c.contains("shared_mem"));
                if i == 0 {
                    c.save("shared_mem", Data::new(42i64)).unwrap();
                }
                c.describe("shared_mem").unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().pattern.as_deref(), Some("{n}_mem"));
    }
    assert_eq!(
        *c.load("shared_mem", None).unwrap().downcast_ref::<i64>().unwrap(),
        42
    );
    assert_eq!(c.list().len(), 1);
}

/// Kedro's order, computed independently: the best match maximizes
/// (literal characters, placeholders) and then takes the smallest text.
fn expected_best<'a>(patterns: &'a [String], name: &str) -> Option<&'a str> {
    patterns
        .iter()
        .filter_map(|p| {
            let parsed = Pattern::parse(p).unwrap().unwrap();
            parsed.matches(name).map(|_| (parsed, p.as_str()))
        })
        .min_by(|(a, at), (b, bt)| {
            b.specificity()
                .cmp(&a.specificity())
                .then(b.placeholders().cmp(&a.placeholders()))
                .then(at.cmp(bt))
        })
        .map(|(_, t)| t)
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    // Alternating literal / placeholder pieces over a tiny alphabet so that
    // patterns overlap often.
    (any::<bool>(), prop::collection::vec("[ab_]{1,2}", 0..3)).prop_map(|(lead, lits)| {
        let mut out = String::new();
        let mut n = 0;
        if lead {
            out.push_str(&format!("{{p{n}}}"));
            n += 1;
        }
        for l in lits {
            out.push_str(&l);
            out.push_str(&format!("{{p{n}}}"));
            n += 1;
        }
        if n == 0 {
            out.push_str("{p0}");
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn explicit_wins_and_most_specific_pattern_is_chosen(
        patterns in prop::collection::btree_set(pattern_strategy(), 1..6),
        // Names starting with `_` are YAML anchors, never entries.
        explicit in prop::collection::btree_set("[ab][ab_]{0,4}", 0..3),
        names in prop::collection::vec("[ab_]{1,6}", 1..8),
    ) {
        // Names starting with `_` are YAML anchors, never entries.
        let patterns: Vec<String> = patterns.into_iter().filter(|p| !p.starts_with('_')).collect();
        // At most one catch-all is allowed: keep the first.
        let mut seen_catch_all = false;
        let patterns: Vec<String> = patterns
            .into_iter()
            .filter(|p| {
                let catch_all = Pattern::parse(p).unwrap().unwrap().specificity() == 0;
                let keep = !(catch_all && seen_catch_all);
                seen_catch_all |= catch_all;
                keep
            })
            .collect();
        let mut entries = serde_json::Map::new();
        for p in &patterns {
            entries.insert(p.clone(), entry("data/pattern.json"));
        }
        for e in &explicit {
            entries.insert(e.clone(), entry("data/explicit.json"));
        }
        let c = catalog(Value::Object(entries));
        let probe: Vec<&String> = names.iter().chain(explicit.iter()).collect();
        for name in probe {
            let info = c.describe(name);
            if explicit.contains(name) {
                let info = info.unwrap();
                prop_assert_eq!(info.pattern, None);
                prop_assert_eq!(info.filepath.as_deref(), Some("data/explicit.json"));
            } else {
                let want = expected_best(&patterns, name);
                let got = info.and_then(|i| i.pattern);
                prop_assert_eq!(got.as_deref(), want, "name `{}`", name);
            }
        }
    }
}

#[test]
fn pattern_matching_basics() {
    let p = Pattern::parse("{a}_{b}").unwrap().unwrap();
    assert_eq!(
        p.matches("x_y_z"),
        Some(BTreeMap::from([
            ("a".into(), "x".into()),
            ("b".into(), "y_z".into())
        ]))
    );
    assert_eq!(p.specificity(), 1);
    assert_eq!(p.placeholders(), 2);
    assert!(Pattern::parse("plain").unwrap().is_none());
    assert!(Pattern::parse("{a}{b}").is_err());
    assert!(Pattern::parse("{a").is_err());
}
