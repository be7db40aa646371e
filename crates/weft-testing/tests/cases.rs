//! The testing runtime's Rust API and YAML cases on a small pipeline:
//! scripted outputs and errors, every assertion kind, expected-vs-got
//! reports, bad cases.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use weft_pipeline::{Condition, Pipeline, cycle, node};
use weft_testing::{TestCase, TestingError, describe, parse_cases, run_case};

fn pipelines() -> BTreeMap<String, Pipeline> {
    let load = node(|n: &i64| (0..*n).collect::<Vec<i64>>(), "params:n", "raw")
        .name("load")
        .build()
        .unwrap();
    let double = node(
        |raw: &Vec<i64>, f: &i64| raw.iter().map(|x| x * f).collect::<Vec<i64>>(),
        ["raw", "params:factor"],
        "doubled",
    )
    .name("double")
    .build()
    .unwrap();
    let total = node(|d: &Vec<i64>| d.iter().sum::<i64>(), "doubled", "total")
        .name("total")
        .build()
        .unwrap();
    let body = Pipeline::new([node(|x: &i64| x + 1, "x", "x_next").name("inc").build().unwrap()]).unwrap();
    let count = cycle("count", body)
        .state("x", "x_next")
        .max_iterations(100)
        .converge_when(Condition::parse("x_next >= 7").unwrap())
        .build()
        .unwrap();
    let mut m = BTreeMap::new();
    m.insert(
        "__default__".to_string(),
        Pipeline::new([load, double, total]).unwrap(),
    );
    m.insert("count".to_string(), Pipeline::new([count]).unwrap());
    m
}

fn params() -> serde_json::Value {
    json!({"n": 4, "factor": 2})
}

#[test]
fn a_real_run_passes_its_assertions() {
    let case = TestCase::new("real")
        .expect_output("total", json!(12))
        .expect_output("raw", json!([0, 1, 2, 3]))
        .expect_ran(["load", "double", "total"])
        .expect_order(["load", "double", "total"])
        .expect_times("double", 1);
    let outcome = run_case(&pipelines(), &params(), &case).unwrap();
    assert!(outcome.passed(), "{}", describe(&outcome));
    assert_eq!(outcome.calls, ["load", "double", "total"]);
}

#[test]
fn scripted_outputs_replace_a_node_and_params_merge() {
    let case = TestCase::new("scripted")
        .params(json!({"factor": 10}))
        .replace_outputs("load", [("raw", json!([5, 5]))])
        .expect_output("total", json!(100));
    let outcome = run_case(&pipelines(), &params(), &case).unwrap();
    assert!(outcome.passed(), "{}", describe(&outcome));
}

#[test]
fn a_scripted_error_fails_the_run_where_expected() {
    let case = TestCase::new("error")
        .replace_error("double", "disk full")
        .expect_error(Some("double"), Some("disk full"))
        .expect_ran(["load", "double"]);
    let outcome = run_case(&pipelines(), &params(), &case).unwrap();
    assert!(outcome.passed(), "{}", describe(&outcome));
}

#[test]
fn mismatches_say_what_was_expected_and_what_came() {
    let case = TestCase::new("wrong")
        .expect_output("total", json!(13))
        .expect_order(["total", "load"])
        .expect_times("load", 2)
        .expect_error(Some("total"), None);
    let outcome = run_case(&pipelines(), &params(), &case).unwrap();
    assert!(!outcome.passed());
    assert_eq!(
        describe(&outcome),
        "FAIL wrong\n  run:\n    expected: a failure in node `total`\n    got:      success\n  output `total`:\n    expected: 13\n    got:      12\n  order:\n    expected: [total, load]\n    got:      [load, total]\n  times `load` ran:\n    expected: 2\n    got:      1"
    );
}

#[test]
fn yaml_cases_with_cycles_and_bad_cases() {
    let text = "cases:\n  - name: counts to 7\n    pipeline: count\n    inputs: {x: 0}\n    expect:\n      outputs: {x_next: 7}\n      iterations: {count: 7}\n      ran: [count]\n  - name: typo\n    replace: {lod: {error: x}}\n    expect: {ran: [nope]}\n";
    let cases = parse_cases(Path::new("tests/t.yml"), text).unwrap();
    let outcome = run_case(&pipelines(), &params(), &cases[0]).unwrap();
    assert!(outcome.passed(), "{}", describe(&outcome));
    let err = run_case(&pipelines(), &params(), &cases[1]).unwrap_err();
    assert!(matches!(err, TestingError::BadCase { .. }));
    assert_eq!(
        err.to_string(),
        "case `typo`: `replace` names unknown node `lod`; `expect` names unknown node `nope`"
    );
    let missing = TestCase::new("no input").pipeline("count");
    let err = run_case(&pipelines(), &params(), &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the pipeline needs input `x`"), "{err}");
    let err = parse_cases(
        Path::new("tests/t.yml"),
        "cases:\n  - {name: a, expect: {ouputs: {}}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("tests/t.yml: case #1 (`a`): unknown field `ouputs`"),
        "{err}"
    );
}
