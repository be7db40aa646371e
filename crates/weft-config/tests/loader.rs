//! Kedro's config rules on real files.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_config::{
    ConfigError, ConfigLoader, MergeStrategy, Problem, ProblemKind, deep_merge, mask_credentials,
    parse_runtime_params, yaml,
};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn conf() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("base")).unwrap();
    dir
}

fn loader(dir: &Path, env: Option<&str>) -> ConfigLoader {
    ConfigLoader::new(dir, env, Value::Null)
}

fn problems(err: ConfigError) -> Vec<Problem> {
    match err {
        ConfigError::Invalid { problems, .. } => problems,
        other => panic!("expected Invalid, got {other}"),
    }
}

fn path(d: &tempfile::TempDir, rel: &str) -> PathBuf {
    d.path().join(rel)
}

#[test]
fn env_overrides_base_destructively_by_default_or_softly() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "model: {lr: 0.1, depth: 3}\nseed: 1\n",
    );
    write(d.path(), "local/parameters.yml", "model: {lr: 0.5}\nextra: x\n");
    let l = loader(d.path(), None);
    assert_eq!(l.env(), "local");
    assert_eq!(
        l.get("parameters").unwrap(),
        json!({"model": {"lr": 0.5}, "seed": 1, "extra": "x"})
    );
    let soft = loader(d.path(), None).with_merge_strategy("parameters", MergeStrategy::Soft);
    assert_eq!(
        soft.get("parameters").unwrap(),
        json!({"model": {"lr": 0.5, "depth": 3}, "seed": 1, "extra": "x"})
    );
    // The strategy is per section: soft parameters leave catalog destructive.
    write(d.path(), "base/catalog.yml", "ds: {type: A, path: p}\n");
    write(d.path(), "local/catalog.yml", "ds: {type: B}\n");
    assert_eq!(soft.get("catalog").unwrap(), json!({"ds": {"type": "B"}}));
    // Another env whose folder is absent: base only.
    let prod = loader(d.path(), Some("prod"));
    assert_eq!(prod.env(), "prod");
    assert_eq!(
        prod.get("parameters").unwrap(),
        json!({"model": {"lr": 0.1, "depth": 3}, "seed": 1})
    );
    // env = base: base only, loaded once (no self-duplicates).
    assert_eq!(
        loader(d.path(), Some("base")).get("catalog").unwrap(),
        json!({"ds": {"type": "A", "path": "p"}})
    );
}

#[test]
fn the_same_key_in_base_and_env_is_not_a_duplicate() {
    let d = conf();
    write(d.path(), "base/catalog.yml", "a: {type: A}\n");
    write(d.path(), "local/catalog.yml", "a: {type: B}\n");
    assert_eq!(
        loader(d.path(), None).get("catalog").unwrap(),
        json!({"a": {"type": "B"}})
    );
}

#[test]
fn duplicate_keys_within_one_env_name_both_files_all_at_once() {
    let d = conf();
    write(
        d.path(),
        "base/catalog.yml",
        "a: {type: MemoryDataset}\nb: {type: MemoryDataset}\n",
    );
    write(
        d.path(),
        "base/catalog_more.yml",
        "# more\nb: {type: MemoryDataset}\na: {type: MemoryDataset}\nc: 1\n",
    );
    let err = loader(d.path(), None).get("catalog").unwrap_err();
    let msg = err.to_string();
    let first = path(&d, "base/catalog.yml");
    let second = path(&d, "base/catalog_more.yml");
    assert_eq!(
        msg,
        format!(
            "invalid configuration (catalog): 2 problems:\n  - duplicate key `b` (in {f}:2 and {s}:2)\n  - duplicate key `a` (in {f}:1 and {s}:3)",
            f = first.display(),
            s = second.display()
        )
    );
    let ps = problems(err);
    assert_eq!(
        ps[0],
        Problem {
            kind: ProblemKind::Duplicate {
                first_file: first.clone(),
                first_line: Some(2)
            },
            file: Some(second.clone()),
            line: Some(2),
            column: None,
            key: "b".into(),
            message: "duplicate key `b`".into(),
        }
    );
}

#[test]
fn duplicates_in_the_env_folder_are_errors_too() {
    let d = conf();
    write(d.path(), "base/catalog.yml", "a: 1\n");
    write(d.path(), "local/catalog.yml", "x: 1\n");
    write(d.path(), "local/nested/catalog.yml", "x: 2\n");
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].key, "x");
    assert_eq!(ps[0].file, Some(path(&d, "local/nested/catalog.yml")));
    assert_eq!(
        ps[0].kind,
        ProblemKind::Duplicate {
            first_file: path(&d, "local/catalog.yml"),
            first_line: Some(1)
        }
    );
}

#[test]
fn parameters_duplicates_are_checked_on_dotted_leaves() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "model:\n  x: 1\n  opts: {a: 1}\n",
    );
    write(
        d.path(),
        "base/parameters/extra.yml",
        "model:\n  y: 2\n  opts: {b: 2}\n",
    );
    assert_eq!(
        loader(d.path(), None).get("parameters").unwrap(),
        json!({"model": {"x": 1, "opts": {"a": 1, "b": 2}, "y": 2}})
    );
    write(d.path(), "base/parameters/clash.yml", "model:\n  x: 3\n");
    let ps = problems(loader(d.path(), None).get("parameters").unwrap_err());
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(
        ps[0].to_string(),
        format!(
            "duplicate parameter `model.x` (in {}:2 and {}:2)",
            path(&d, "base/parameters.yml").display(),
            path(&d, "base/parameters/clash.yml").display()
        )
    );
}

#[test]
fn parameters_plain_value_against_sub_keys_is_a_conflict() {
    let d = conf();
    write(d.path(), "base/parameters.yml", "model: simple\nopt: {a: 1}\n");
    write(d.path(), "base/parameters_more.yml", "model: {x: 1}\nopt: 2\n");
    let ps = problems(loader(d.path(), None).get("parameters").unwrap_err());
    let msgs: Vec<&str> = ps.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "conflicting parameter `model`: a plain value in one file, has the sub-key `model.x` in the other",
            "conflicting parameter `opt`: has the sub-key `opt.a` in one file, a plain value in the other",
        ]
    );
    assert!(
        ps.iter()
            .all(|p| p.file == Some(path(&d, "base/parameters_more.yml")))
    );
}

#[test]
fn underscore_keys_are_dropped_but_usable_as_anchors_and_references() {
    let d = conf();
    write(
        d.path(),
        "base/catalog.yml",
        "_csv: &csv {type: csv.CSVDataset, load_args: {sep: ','}}\n_root: data/01_raw\ncompanies:\n  <<: *csv\n  filepath: ${_root}/companies.csv\nreviews:\n  <<: *csv\n  type: csv.Other\n  nested: {_kept: 1}\n",
    );
    let v = loader(d.path(), None).get("catalog").unwrap();
    assert_eq!(
        v,
        json!({
            "companies": {"type": "csv.CSVDataset", "load_args": {"sep": ","}, "filepath": "data/01_raw/companies.csv"},
            "reviews": {"type": "csv.Other", "load_args": {"sep": ","}, "nested": {"_kept": 1}}
        })
    );
}

#[test]
fn globals_interpolate_with_types_and_defaults() {
    let d = conf();
    write(
        d.path(),
        "base/globals.yml",
        "n: 3\nbucket: s3://b\nflags: {on: true}\n_hidden: 1\n",
    );
    write(d.path(), "local/globals.yaml", "bucket: file:///tmp\n");
    write(
        d.path(),
        "base/parameters.yml",
        "n: ${globals:n}\npath: ${globals:bucket}/x\nmix: n=${globals:n}!\nflags: ${globals:flags}\ndefault_int: ${globals:nope,7}\ndefault_float: ${globals:nope, 0.5}\ndefault_str: ${globals:nope,abc}\ndefault_bool: ${globals:nope,false}\nembedded_default: v${globals:nope,2}\n",
    );
    let l = loader(d.path(), None);
    assert_eq!(
        l.get("globals").unwrap(),
        json!({"n": 3, "bucket": "file:///tmp", "flags": {"on": true}})
    );
    assert_eq!(
        l.get("parameters").unwrap(),
        json!({
            "n": 3, "path": "file:///tmp/x", "mix": "n=3!", "flags": {"on": true},
            "default_int": 7, "default_float": 0.5, "default_str": "abc",
            "default_bool": false, "embedded_default": "v2"
        })
    );
}

#[test]
fn globals_keys_starting_with_underscore_are_rejected() {
    let d = conf();
    write(d.path(), "base/globals.yml", "_hidden: 1\n");
    write(d.path(), "base/catalog.yml", "x: ${globals:_hidden,2}\n");
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(
        ps[0].message,
        "`x` in catalog: `${globals:_hidden,2}`: keys starting with `_` are not supported for globals"
    );
}

#[test]
fn runtime_params_interpolate_and_merge_into_parameters() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "lr: ${runtime_params:lr,0.01}\nname: ${runtime_params:who,anon}\nnested: ${runtime_params:model.depth}\nmodel: {depth: 1, width: 8}\n",
    );
    let runtime = parse_runtime_params("lr=0.5,model.depth=4").unwrap();
    let l = ConfigLoader::new(d.path(), None, runtime.clone());
    assert_eq!(
        l.get("parameters").unwrap(),
        json!({"lr": 0.5, "name": "anon", "nested": 4, "model": {"depth": 1, "width": 8}})
    );
    // parameters(): runtime params deep-merged on top; the loader's copy untouched.
    let merged = l.parameters().unwrap();
    assert_eq!(
        merged,
        json!({"lr": 0.5, "name": "anon", "nested": 4, "model": {"depth": 4, "width": 8}})
    );
    assert_eq!(l.runtime_params(), &runtime);
    assert_eq!(l.parameters().unwrap(), merged);
}

#[test]
fn runtime_params_resolver_is_rejected_in_globals() {
    let d = conf();
    write(d.path(), "base/globals.yml", "x: ${runtime_params:x,1}\n");
    let ps = problems(
        ConfigLoader::new(d.path(), None, json!({"x": 2}))
            .get("globals")
            .unwrap_err(),
    );
    assert_eq!(
        ps[0].message,
        "`x` in globals: `${runtime_params:x,1}`: the `runtime_params` resolver is not allowed in globals"
    );
}

#[test]
fn env_resolver_works_in_credentials_only() {
    let d = conf();
    // The loader reads no process environment: the caller hands one in.
    let unset = "WEFT_CONFIG_TEST_UNSET_5821";
    let path_var = "/opt/bin:/usr/bin".to_string();
    let environment = std::sync::Arc::new(
        [("PATH".to_string(), path_var.clone())]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    write(
        d.path(),
        "base/credentials.yml",
        &format!(
            "db:\n  password: ${{env:{unset},fallback}}\n  port: ${{oc.env:{unset},5432}}\n  path: ${{oc.env:PATH}}\n  prefixed: p-${{env:PATH}}\n"
        ),
    );
    assert_eq!(
        loader(d.path(), None)
            .with_environment(environment.clone())
            .get("credentials")
            .unwrap(),
        json!({"db": {"password": "fallback", "port": 5432, "path": path_var, "prefixed": format!("p-{path_var}")}})
    );
    write(
        d.path(),
        "base/parameters.yml",
        &format!("a: 1\nx: ${{env:{unset},1}}\n"),
    );
    write(d.path(), "base/catalog.yml", "y:\n  path: ${oc.env:PATH}\n");
    let ps = problems(loader(d.path(), None).get("parameters").unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].to_string(),
        format!(
            "{}:2: `x` in parameters: `${{env:{unset},1}}`: the env resolver is only allowed in credentials, not in parameters",
            path(&d, "base/parameters.yml").display()
        )
    );
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(
        ps[0].message,
        "`y.path` in catalog: `${oc.env:PATH}`: the env resolver is only allowed in credentials, not in catalog"
    );
    // A missing variable without default in credentials names it.
    write(
        d.path(),
        "base/credentials.yml",
        &format!("db: {{password: '${{oc.env:{unset}}}'}}\n"),
    );
    let ps = problems(loader(d.path(), None).get("credentials").unwrap_err());
    assert_eq!(
        ps[0].message,
        format!(
            "`db.password` in credentials: cannot resolve `${{oc.env:{unset}}}`: environment variable `{unset}` is not set and no default (write `${{oc.env:{unset},<default>}}` to give one)"
        )
    );
}

#[test]
fn same_section_references_are_typed_and_see_the_merged_section() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "model: {depth: 3, name: m}\ncopy: ${model}\ndepth: ${model.depth}\nlabel: ${model.name}-${model.depth}\nchain: ${depth}\nitems: [a, b]\nsecond: ${items.1}\nliteral: cost \\${not.a.ref}\n",
    );
    write(d.path(), "local/parameters.yml", "model: {depth: 5, name: n}\n");
    assert_eq!(
        loader(d.path(), None).get("parameters").unwrap(),
        json!({
            "model": {"depth": 5, "name": "n"}, "copy": {"depth": 5, "name": "n"}, "depth": 5,
            "label": "n-5", "chain": 5, "items": ["a", "b"], "second": "b",
            "literal": "cost ${not.a.ref}"
        })
    );
}

#[test]
fn missing_references_and_cycles_are_reported_with_section_key_file_and_line() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "a: ${globals:nope}\nb: ${c}\nc: ${b}\nd:\n  e: x-${runtime_params:x}\nf: ${nope.deeper}\ng: ${unknown:thing}\n",
    );
    let err = loader(d.path(), None).get("parameters").unwrap_err();
    let file = path(&d, "base/parameters.yml");
    let ps = problems(err);
    let got: Vec<(String, Option<usize>, String)> = ps
        .iter()
        .map(|p| {
            assert_eq!(p.kind, ProblemKind::Interpolation);
            assert_eq!(p.file.as_deref(), Some(file.as_path()));
            (p.key.clone(), p.line, p.message.clone())
        })
        .collect();
    let row = |k: &str, l: usize, m: &str| (k.to_string(), Some(l), m.to_string());
    assert_eq!(
        got,
        vec![
            row(
                "a",
                1,
                "`a` in parameters: cannot resolve `${globals:nope}`: no key `nope` in globals and no default (write `${globals:nope,<default>}` to give one)"
            ),
            row("c", 3, "`c` in parameters: interpolation cycle b -> c -> b"),
            row("b", 2, "`b` in parameters: interpolation cycle c -> b -> c"),
            row(
                "d.e",
                5,
                "`d.e` in parameters: cannot resolve `${runtime_params:x}`: no runtime parameter `x` and no default (write `${runtime_params:x,<default>}` to give one)"
            ),
            row(
                "f",
                6,
                "`f` in parameters: cannot resolve `${nope.deeper}`: no key `nope.deeper` in parameters and no default"
            ),
            row(
                "g",
                7,
                "`g` in parameters: `${unknown:thing}`: unsupported resolver `unknown` (supported: globals, runtime_params, and oc.env/env in credentials)"
            ),
        ]
    );
}

#[test]
fn self_reference_is_a_cycle() {
    let d = conf();
    write(d.path(), "base/catalog.yml", "a: {path: '${a.path}'}\n");
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].message,
        "`a.path` in catalog: interpolation cycle a.path -> a.path"
    );
}

#[test]
fn problems_in_globals_and_the_section_are_reported_together() {
    let d = conf();
    write(d.path(), "base/globals.yml", "x: ${missing}\n");
    write(d.path(), "base/parameters.yml", "y: ${globals:other}\n");
    let err = loader(d.path(), None).get("parameters").unwrap_err();
    let ConfigError::Invalid { section, problems } = err else {
        panic!()
    };
    assert_eq!(section, "parameters");
    let keys: Vec<(&str, PathBuf)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.file.clone().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("x", path(&d, "base/globals.yml")),
            ("y", path(&d, "base/parameters.yml"))
        ]
    );
}

#[test]
fn yaml_syntax_errors_report_file_and_line_with_other_problems() {
    let d = conf();
    write(d.path(), "base/catalog.yml", "ok: 1\nbad: [1, 2\nnext: 3\n");
    write(d.path(), "base/catalog_b.yml", "ok: 2\n");
    write(
        d.path(),
        "base/catalog_c.json",
        "{\n  \"a\": 1,\n  \"b\": oops\n}\n",
    );
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert_eq!(ps[0].kind, ProblemKind::Syntax);
    assert!(ps[0].column.is_some(), "{ps:?}");
    assert!(!ps[0].message.starts_with("error"), "{ps:?}");
    assert_eq!(ps[0].file, Some(path(&d, "base/catalog.yml")));
    // saphyr notices the unclosed `[` at the `:` of the next line.
    assert_eq!((ps[0].line, ps[0].column), (Some(3), Some(5)));
    assert!(
        ps[0]
            .to_string()
            .starts_with(&format!("{}:3:5: ", path(&d, "base/catalog.yml").display())),
        "{}",
        ps[0]
    );
    // catalog_b's `ok` is not a duplicate: the broken file defined nothing.
    assert_eq!(ps[1].kind, ProblemKind::Syntax);
    assert_eq!(ps[1].file, Some(path(&d, "base/catalog_c.json")));
    assert_eq!(ps[1].line, Some(3));
}

#[test]
fn yaml_load_file_errors_carry_path_line_and_column() {
    let d = conf();
    let file = path(&d, "base/broken.yml");
    write(d.path(), "base/broken.yml", "a: 1\nb: 2\n  c: 3\n");
    let err = yaml::load_file(&file).unwrap_err();
    let ConfigError::Parse {
        file: f,
        line,
        column,
        message,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(f, &file);
    assert_eq!(*line, Some(3), "{err}");
    assert!(column.is_some(), "{err}");
    assert!(!message.is_empty());
    assert!(
        err.to_string().starts_with(&format!("{}:3:", file.display())),
        "{err}"
    );
    // duplicate keys inside one mapping are a parse error
    let dup = yaml::from_str("a: 1\na: 2\n", Path::new("d.yml")).unwrap_err();
    assert!(dup.to_string().starts_with("d.yml:2"), "{dup}");
    // a missing file is an I/O error naming it
    let missing = yaml::load_file(&path(&d, "nope.yml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("nope.yml"), "{missing}");
}

#[test]
fn json_files_and_recursive_patterns() {
    let d = conf();
    write(d.path(), "base/parameters/model.yml", "model: {depth: 3}\n");
    write(
        d.path(),
        "base/parameters_data.json",
        r#"{"data": {"rows": 10, "cols": [1, 2]}}"#,
    );
    write(d.path(), "base/sub/deep/parameters.yml", "deep: true\n");
    write(d.path(), "base/sub/parameters_x.yaml", "x: 1\n");
    write(d.path(), "base/.hidden/parameters.yml", "hidden: true\n");
    write(d.path(), "base/.parameters.yml", "hidden2: true\n");
    write(d.path(), "base/parameters/.secret.yml", "hidden3: true\n");
    write(d.path(), "base/parameters/notes.txt", "not: config\n");
    write(d.path(), "base/sub/other.yml", "other: true\n");
    write(d.path(), "base/catalog.yml", "x: {type: MemoryDataset}\n");
    write(d.path(), "base/parameters/empty.yml", "# nothing yet\n");
    let p = loader(d.path(), None).get("parameters").unwrap();
    assert_eq!(
        p,
        json!({"model": {"depth": 3}, "data": {"rows": 10, "cols": [1, 2]}, "deep": true, "x": 1})
    );
}

#[test]
fn files_load_in_sorted_path_order() {
    let d = conf();
    // Sorted by full relative path, like Kedro: `catalog.yml` < `catalog/a.yml`.
    write(d.path(), "base/catalog/a.yml", "k: 1\n");
    write(d.path(), "base/catalog.yml", "k: 2\n");
    let ps = problems(loader(d.path(), None).get("catalog").unwrap_err());
    assert_eq!(ps[0].file, Some(path(&d, "base/catalog/a.yml")));
    assert_eq!(
        ps[0].kind,
        ProblemKind::Duplicate {
            first_file: path(&d, "base/catalog.yml"),
            first_line: Some(1)
        }
    );
}

#[test]
fn custom_sections_need_patterns() {
    let d = conf();
    write(d.path(), "base/spark.yml", "spark.master: local[*]\n");
    write(d.path(), "base/mlflow/tracking.yml", "uri: ${globals:uri}\n");
    write(d.path(), "base/globals.yml", "uri: http://m\n");
    write(d.path(), "local/spark.yml", "spark.master: yarn\n");
    let err = loader(d.path(), None).get("spark").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownSection { ref section } if section == "spark"));
    assert!(err.to_string().contains("`spark`"), "{err}");
    let l = loader(d.path(), None)
        .with_patterns("spark", vec!["spark*".into()])
        .with_patterns("mlflow", vec!["mlflow/**".into()]);
    assert_eq!(l.get("spark").unwrap(), json!({"spark.master": "yarn"}));
    assert_eq!(l.get("mlflow").unwrap(), json!({"uri": "http://m"}));
}

#[test]
fn missing_base_is_an_error_and_top_level_must_be_a_map() {
    let d = tempfile::tempdir().unwrap();
    let err = loader(d.path(), None).get("catalog").unwrap_err();
    assert!(matches!(err, ConfigError::MissingBase { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "configuration folder {} has no `base` environment (expected the folder {})",
            d.path().display(),
            d.path().join("base").display()
        )
    );
    let d = conf();
    write(d.path(), "base/parameters.yml", "- 1\n- 2\n");
    let ps = problems(loader(d.path(), None).get("parameters").unwrap_err());
    assert_eq!(ps[0].kind, ProblemKind::NotAMapping);
    assert_eq!(
        ps[0].message,
        "the top level must be a mapping of keys, got [1,2]"
    );
}

#[test]
fn empty_conf_gives_empty_sections() {
    let d = conf();
    let l = loader(d.path(), None);
    for s in ["catalog", "parameters", "credentials", "globals"] {
        assert_eq!(l.get(s).unwrap(), json!({}), "{s}");
    }
    assert_eq!(l.parameters().unwrap(), json!({}));
}

#[test]
fn runtime_params_parsing_and_deep_merge() {
    assert_eq!(
        parse_runtime_params("a=1,b.c=x,b.d=2.5,e:true,f=null,g=text with spaces").unwrap(),
        json!({"a": 1, "b": {"c": "x", "d": 2.5}, "e": true, "f": null, "g": "text with spaces"})
    );
    let err = parse_runtime_params("a=1,broken,c=3").unwrap_err();
    assert!(matches!(err, ConfigError::RuntimeParams { ref item, .. } if item == "broken"));
    assert_eq!(
        err.to_string(),
        "invalid runtime parameter `broken`: expected `key=value` (or `key:value`)"
    );
    let mut base = json!({"m": {"a": 1, "b": {"c": 2}}, "l": [1, 2]});
    deep_merge(&mut base, json!({"m": {"b": {"d": 3}}, "l": [3]}));
    assert_eq!(base, json!({"m": {"a": 1, "b": {"c": 2, "d": 3}}, "l": [3]}));
}

#[test]
fn credentials_mask() {
    let d = conf();
    write(
        d.path(),
        "base/credentials.yml",
        "db: {user: u, password: p, port: 5432}\n",
    );
    let creds = loader(d.path(), None).get("credentials").unwrap();
    assert_eq!(
        mask_credentials(&creds),
        json!({"db": {"user": "***", "password": "***", "port": "***"}})
    );
}

#[test]
fn line_of_finds_nested_keys_for_other_crates() {
    let text = "# pipelines\n__default__:\n  nodes:\n    - a\n  inputs: x\nother:\n  nodes: [b]\n  sub:\n    nodes: 1\n";
    assert_eq!(yaml::line_of(text, &["__default__"]), Some(2));
    assert_eq!(yaml::line_of(text, &["__default__", "nodes"]), Some(3));
    assert_eq!(yaml::line_of(text, &["other", "nodes"]), Some(7));
    assert_eq!(yaml::line_of(text, &["other", "sub", "nodes"]), Some(9));
    assert_eq!(yaml::line_of(text, &["__default__", "sub"]), None);
    assert_eq!(yaml::line_of(text, &["nodes"]), None);
    assert_eq!(yaml::line_of(text, &[]), None);
}

#[test]
fn interpolation_problems_point_at_the_file_that_defined_the_value() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "model:\n  a: ${globals:x}\n  b: 1\n",
    );
    write(d.path(), "local/parameters.yml", "model:\n  b: ${globals:y}\n");
    let soft = loader(d.path(), None).with_merge_strategy("parameters", MergeStrategy::Soft);
    let ps = problems(soft.get("parameters").unwrap_err());
    let got: Vec<(&str, Option<PathBuf>, Option<usize>)> = ps
        .iter()
        .map(|p| (p.key.as_str(), p.file.clone(), p.line))
        .collect();
    assert_eq!(
        got,
        [
            ("model.a", Some(path(&d, "base/parameters.yml")), Some(2)),
            ("model.b", Some(path(&d, "local/parameters.yml")), Some(2)),
        ]
    );
    // Destructive: base's `model` is gone, only the env's problem remains.
    let ps = problems(loader(d.path(), None).get("parameters").unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].key, "model.b");
}

#[test]
fn yaml_1_1_booleans_mean_what_they_mean_in_kedro_in_every_section() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "flag: yes\nother: on\nno_way: No\nshort: y\nquoted: 'yes'\n",
    );
    write(
        d.path(),
        "base/catalog.yml",
        "model:\n  type: json\n  path: data/m.json\n  versioned: Yes\non: {type: json, path: x}\n",
    );
    write(d.path(), "base/globals.yml", "debug: OFF\n");
    let l = loader(d.path(), None);
    assert_eq!(
        l.get("parameters").unwrap(),
        json!({"flag": true, "other": true, "no_way": false, "short": "y", "quoted": "yes"})
    );
    let catalog = l.get("catalog").unwrap();
    assert_eq!(catalog["model"]["versioned"], true);
    assert!(
        catalog.get("on").is_some(),
        "mapping keys keep their text: {catalog}"
    );
    assert_eq!(l.get("globals").unwrap(), json!({"debug": false}));
}

#[test]
fn duplicate_keys_in_one_file_name_both_lines_in_our_words() {
    let d = conf();
    write(
        d.path(),
        "base/parameters.yml",
        "a: 1\n\nlr: 0.1\nb: 2\nc: 3\nd: 4\nlr: 0.2\n",
    );
    let err = loader(d.path(), None).get("parameters").unwrap_err().to_string();
    assert!(
        err.contains("parameters.yml:7: duplicate key `lr` (first at line 3)"),
        "{err}"
    );
    assert!(
        !err.to_lowercase().contains("duplicatekeypolicy") && !err.contains("budget"),
        "{err}"
    );
}
