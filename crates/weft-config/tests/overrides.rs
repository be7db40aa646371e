//! Data-driven tests of the override grammar, ported from Hydra 1.3's
//! `tests/test_overrides_parser.py` (element, value, primitive, quoted,
//! list, dict, choice, range, sort, shuffle, casts and errors), plus
//! weft's bounded expansion and `--params` rules.

#![allow(clippy::approx_constant)] // Hydra's cases use 3.14 as text.

use serde_json::{Value, json};
use weft_config::overrides::{DEFAULT_MAX_RUNS, OverrideError, Sweep};
use weft_config::{ConfigError, parse_runtime_params};

/// The values `x` takes over the runs of the override `x=<value>`.
fn values(value: &str) -> Result<Vec<Value>, OverrideError> {
    let sweep = Sweep::parse(&[format!("x={value}")])?;
    Ok(sweep
        .expand(DEFAULT_MAX_RUNS)?
        .map(|run| run["x"].clone())
        .collect())
}

fn check(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (input, expected) in cases {
        match values(input) {
            Ok(got) if got == *expected.as_array().expect("expected values are a list") => {}
            Ok(got) => failures.push(format!("x={input}: got {got:?}, expected {expected}")),
            Err(e) => failures.push(format!("x={input}: error {e}, expected {expected}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn primitives_are_typed_as_hydra_types_them() {
    check(&[
        ("abc", json!(["abc"])),
        ("abc123", json!(["abc123"])),
        ("abc-123", json!(["abc-123"])),
        ("a b c\t-\t1 2 3", json!(["a b c\t-\t1 2 3"])),
        (" abc-123 ", json!(["abc-123"])),
        ("123abc", json!(["123abc"])),
        ("10abc", json!(["10abc"])),
        ("a.b.c", json!(["a.b.c"])),
        ("list.0.bar", json!(["list.0.bar"])),
        ("0.foo", json!(["0.foo"])),
        (r"/-\+.$%*@?|", json!([r"/-\+.$%*@?|"])),
        (".", json!(["."])),
        ("xyz_${a.b.c}", json!(["xyz_${a.b.c}"])),
        ("${f:USER,root}", json!(["${f:USER,root}"])),
        ("${f.g:USER,root}", json!(["${f.g:USER,root}"])),
        ("${foo:[1,2,3]}", json!(["${foo:[1,2,3]}"])),
        ("c:\\foo\\a-b.txt", json!(["c:\\foo\\a-b.txt"])),
        ("http://host:8080/x", json!(["http://host:8080/x"])),
        ("null", json!([null])),
        ("NULL", json!([null])),
        ("0", json!([0])),
        ("1", json!([1])),
        ("+1", json!([1])),
        ("-1", json!([-1])),
        ("10_0", json!([100])),
        ("1___0___", json!(["1___0___"])),
        ("007", json!(["007"])),
        ("0.0", json!([0.0])),
        ("0.51", json!([0.51])),
        ("1e-05", json!([1e-05])),
        ("-3.14", json!([-3.14])),
        ("3.1_4", json!([3.14])),
        ("10e0", json!([10.0])),
        ("-10e1", json!([-100.0])),
        ("1.", json!([1.0])),
        (".5", json!([0.5])),
        ("true", json!([true])),
        ("True", json!([true])),
        ("TRUE", json!([true])),
        ("trUe", json!([true])),
        ("false", json!([false])),
        ("faLse", json!([false])),
        ("yes", json!(["yes"])),
        ("9223372036854775807", json!([i64::MAX])),
        ("18446744073709551615", json!([u64::MAX])),
    ]);
}

#[test]
fn escapes_in_unquoted_strings() {
    check(&[
        (r"a\,b", json!(["a,b"])),
        (r"a\:b", json!(["a:b"])),
        (r"a\=b", json!(["a=b"])),
        (r"\ ab", json!([" ab"])),
        (r"ab\ ", json!(["ab "])),
        ("ab\\\t", json!(["ab\t"])),
        ("ab\\\\", json!(["ab\\"])),
        (r"\,", json!([","])),
        (r"f\(a\, b\)", json!(["f(a, b)"])),
        (r"\[a\, b\]", json!(["[a, b]"])),
        (r"\{a\: b\}", json!(["{a: b}"])),
        (r"$\{foo.bar\}", json!(["${foo.bar}"])),
    ]);
}

#[test]
fn quoted_strings() {
    check(&[
        (r"'foo \'bar'", json!(["foo 'bar"])),
        (r#""foo \"bar""#, json!(["foo \"bar"])),
        (r"'foo \\\'bar'", json!([r"foo \'bar"])),
        (r#""foo \\\"bar""#, json!([r#"foo \"bar"#])),
        (r"'foo\bar'", json!([r"foo\bar"])),
        (r"'foo\\bar'", json!([r"foo\\bar"])),
        (r"'foo\\\\bar'", json!([r"foo\\\\bar"])),
        (r"'foo bar\\'", json!(["foo bar\\"])),
        (r"'foo \\\\\'bar\' \\\\\\'", json!([r"foo \\'bar' \\\"])),
        ("'\t []{},=+~'", json!(["\t []{},=+~"])),
        ("\"\t []{},=+~\"", json!(["\t []{},=+~"])),
        ("'a b c'", json!(["a b c"])),
        ("'a,b'", json!(["a,b"])),
        ("\"a,b\"", json!(["a,b"])),
        ("'[1,2,3]'", json!(["[1,2,3]"])),
        ("\"[1,'2',3]\"", json!(["[1,'2',3]"])),
        ("'null'", json!(["null"])),
        ("'100'", json!(["100"])),
        ("'3.14'", json!(["3.14"])),
        ("'nan'", json!(["nan"])),
        ("'true'", json!(["true"])),
        ("'a ${b}'", json!(["a ${b}"])),
        (r"'a \${b}'", json!([r"a \${b}"])),
        (r"'a \'\${b}\''", json!([r"a '\${b}'"])),
        (r"'a \\${b}'", json!([r"a \\${b}"])),
    ]);
}

#[test]
fn lists_and_dicts() {
    check(&[
        ("[]", json!([[]])),
        ("[1]", json!([[1]])),
        ("[1 ]", json!([[1]])),
        ("[1,2,3]", json!([[1, 2, 3]])),
        ("[1, 2, 3]", json!([[1, 2, 3]])),
        ("['a b']", json!([["a b"]])),
        ("['[a,b]']", json!([["[a,b]"]])),
        ("[[a]]", json!([[["a"]]])),
        ("[[[a]]]", json!([[[["a"]]]])),
        ("[1,[a]]", json!([[1, ["a"]]])),
        (r"['a\\', 'b\\']", json!([["a\\", "b\\"]])),
        (r#"["a\\", "b\\"]"#, json!([["a\\", "b\\"]])),
        ("{}", json!([{}])),
        ("{a:b}", json!([{"a": "b"}])),
        ("{a:10}", json!([{"a": 10}])),
        ("{a:[a,10]}", json!([{"a": ["a", 10]}])),
        ("{a:[true,10]}", json!([{"a": [true, 10]}])),
        ("{a:10,b:20}", json!([{"a": 10, "b": 20}])),
        ("{a:10,b:{}}", json!([{"a": 10, "b": {}}])),
        ("{a:10,b:{c:[1,2]}}", json!([{"a": 10, "b": {"c": [1, 2]}}])),
        ("{null: 1}", json!([{"null": 1}])),
        ("{123: 1, 0: 2, -1: 3}", json!([{"123": 1, "0": 2, "-1": 3}])),
        ("{true: 1, fAlSe: 0}", json!([{"true": 1, "false": 0}])),
        (r"{/-\+.$%*@?|: 1}", json!([{r"/-\+.$%*@?|": 1}])),
        (
            "{\\\\\\(\\)\\[\\]\\{\\}\\:\\=\\ \\\t\\,: 1}",
            json!([{"\\()[]{}:= \t,": 1}]),
        ),
        ("{white spaces: 1}", json!([{"white spaces": 1}])),
        (
            "{a_b: 1, ab 123.5 True: 2}",
            json!([{"a_b": 1, "ab 123.5 True": 2}]),
        ),
        (r"{a: 'a\\', b: 'b\\'}", json!([{"a": "a\\", "b": "b\\"}])),
    ]);
}

#[test]
fn simple_and_choice_sweeps() {
    check(&[
        ("1,2,3", json!([1, 2, 3])),
        ("1, 2, 3", json!([1, 2, 3])),
        ("a , b", json!(["a", "b"])),
        ("a,10,3.14", json!(["a", 10, 3.14])),
        ("${a}, ${b}, ${c}", json!(["${a}", "${b}", "${c}"])),
        ("[a,b],[c,d]", json!([["a", "b"], ["c", "d"]])),
        ("[1,2],[3,4]", json!([[1, 2], [3, 4]])),
        ("{a:1},{a:2}", json!([{"a": 1}, {"a": 2}])),
        ("'a,b',c", json!(["a,b", "c"])),
        ("\"a,b\",'c,d'", json!(["a,b", "c,d"])),
        (r"a\,b,c", json!(["a,b", "c"])),
        ("choice(a)", json!(["a"])),
        ("choice(a,b)", json!(["a", "b"])),
        ("choice (a,b)", json!(["a", "b"])),
        ("choice( 10 , 20 )", json!([10, 20])),
        ("choice(str(10))", json!(["10"])),
        ("choice([1,2],[3])", json!([[1, 2], [3]])),
    ]);
}

#[test]
fn ranges() {
    check(&[
        ("range(10,11)", json!([10])),
        ("range (10,11)", json!([10])),
        ("range(1,10,2)", json!([1, 3, 5, 7, 9])),
        ("range(start=1,stop=10,step=2)", json!([1, 3, 5, 7, 9])),
        ("range(1.0, 3.14)", json!([1.0, 2.0, 3.0])),
        (
            "range(1.0, 2.0, 0.1)",
            json!([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9]),
        ),
        ("range(0, 0.3, 0.1)", json!([0.0, 0.1, 0.2])),
        ("range(4)", json!([0, 1, 2, 3])),
        ("range(-3, step=-1)", json!([0, -1, -2])),
        ("range(5, 0, -2)", json!([5, 3, 1])),
        ("range(2.5)", json!([0.0, 1.0, 2.0])),
        ("range(1.5, step=0.5)", json!([0.0, 0.5, 1.0])),
        ("int(range(1.0, 3.0))", json!([1, 2])),
        ("float(range(1, 3))", json!([1.0, 2.0])),
    ]);
}

#[test]
fn casts_sort_and_shuffle() {
    check(&[
        ("int(10.0)", json!([10])),
        ("int(-3.9)", json!([-3])),
        ("int('5')", json!([5])),
        ("int(true)", json!([1])),
        ("str(10.0)", json!(["10.0"])),
        ("str(1e-05)", json!(["1e-05"])),
        ("str(10)", json!(["10"])),
        ("str(true)", json!(["true"])),
        ("bool(10.0)", json!([true])),
        ("bool(0)", json!([false])),
        ("bool('False')", json!([false])),
        ("float(10)", json!([10.0])),
        ("float(float(10))", json!([10.0])),
        ("float('1e3')", json!([1000.0])),
        ("int([1.5,2.5])", json!([[1, 2]])),
        ("str({a:1})", json!([{"a": "1"}])),
        ("int(1,2)", json!([1, 2])),
        ("sort([2,3,1])", json!([[1, 2, 3]])),
        ("sort([2,3,1],reverse=true)", json!([[3, 2, 1]])),
        ("sort(list=[b,a])", json!([["a", "b"]])),
        ("sort(3,2,1)", json!([1, 2, 3])),
        ("sort(a,c,b,reverse=true)", json!(["c", "b", "a"])),
        ("sort(1.5,1,true)", json!([1, true, 1.5])),
        ("sort([2,1],[1,3])", json!([[1, 3], [2, 1]])),
        ("float(sort(3,2,1))", json!([1.0, 2.0, 3.0])),
        ("sort(float(3,2,1))", json!([1.0, 2.0, 3.0])),
        ("sort(choice(b,a))", json!(["a", "b"])),
        ("sort(range(1,5),reverse=true)", json!([4, 3, 2, 1])),
        ("sort(range(10,0,-2))", json!([2, 4, 6, 8, 10])),
        ("sort(range(0,0.3,0.1),reverse=true)", json!([0.2, 0.1, 0.0])),
        ("sort(5)", json!([5])),
        ("shuffle(7)", json!([[7]])),
    ]);
}

#[test]
fn shuffles_are_permutations_and_reproducible_with_a_seed() {
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|x| x.as_i64());
        v
    };
    let expected: Vec<Value> = (1..10).map(Value::from).collect();
    for spec in [
        "shuffle(1,2,3,4,5,6,7,8,9)",
        "shuffle(range(1,10))",
        "shuffle(choice(1,2,3,4,5,6,7,8,9))",
    ] {
        assert_eq!(sorted(values(spec).unwrap()), expected, "{spec}");
        let seeded = format!("{}, seed=42)", spec.strip_suffix(')').unwrap());
        let a = values(&seeded).unwrap();
        assert_eq!(a, values(&seeded).unwrap(), "{seeded} is reproducible");
        assert_eq!(sorted(a.clone()), expected);
        assert_ne!(
            a, expected,
            "{seeded} shuffles (a fixed seed, a fixed permutation)"
        );
        let other = format!("{}, seed=7)", spec.strip_suffix(')').unwrap());
        assert_ne!(a, values(&other).unwrap(), "different seeds, different orders");
    }
    let list = values("shuffle([1,2,3,4,5,6,7,8,9], seed=1)").unwrap();
    let items = list[0].as_array().unwrap().clone();
    assert_eq!(sorted(items.clone()), expected);
    assert_eq!(list, values("shuffle(list=[1,2,3,4,5,6,7,8,9], seed=1)").unwrap());
}

/// (override, column or 0 when not a syntax error, words the message contains)
const MALFORMED: &[(&str, usize, &str)] = &[
    ("a=1,,2", 5, "expected a value after `,`, found `,`"),
    ("a=1,", 5, "expected a value after `,`, found the end"),
    ("a=", 3, "expected a value for `a`, found the end"),
    ("a=  ", 5, "expected a value for `a`"),
    ("=1", 1, "expected a parameter name before `=`"),
    ("a..b=1", 3, "empty segment"),
    (".a=1", 1, "empty segment"),
    ("a.=1", 3, "empty segment"),
    ("a b=1", 1, "not `a b`"),
    ("a", 2, "expected `=` after `a`"),
    ("", 1, "expected an override `key=value`"),
    ("a=[1,2", 7, "expected `,` or `]`, found the end"),
    ("a=[1,2}", 7, "expected `,` or `]`, found `}`"),
    ("a={a:1", 7, "expected `,` or `}`, found the end"),
    ("a={a 1}", 7, "expected `:` after the map key"),
    ("a={:1}", 4, "expected a map key"),
    ("key={' abc ': 0}", 6, "expected a map key"),
    ("a='abc", 3, "expected a closing ' for the quote opened here"),
    ("a=\"abc", 3, "expected a closing \" for the quote opened here"),
    (r"a=['a\', 'b']", 0, ""),
    (
        "key=[]aa",
        7,
        "expected `,` or the end of the override, found `a`",
    ),
    (
        "key=[1,2,3]'",
        12,
        "expected `,` or the end of the override, found `'`",
    ),
    ("a=x#y", 4, "found `#`"),
    ("a=(1)", 3, "expected a value, found `(`"),
    ("a=range(1,2", 12, "expected `,` or `)` to close range("),
    ("a=choice()", 0, "choice() needs at least one value"),
    ("a=choice(choice(1,2))", 0, "nesting a choice sweep"),
    ("a=range()", 0, "range() needs at least a stop value"),
    ("a=range(1,2,0)", 0, "step must not be 0"),
    ("a=range(a,2)", 0, "`start` must be an int or a float"),
    ("a=range(1,2,3,4)", 0, "at most 3 arguments"),
    ("a=range(1,stop=2,3)", 18, "positional argument after a named one"),
    ("a=range(1,foo=2)", 0, "unknown argument `foo`"),
    ("a=foo(1)", 0, "unknown function `foo`"),
    ("a=glob(*)", 0, "glob() is not supported"),
    ("a=interval(0,1)", 0, "interval() is not supported"),
    ("a=sort(3,2,str(1))", 0, "cannot compare"),
    ("a=sort([1],reverse=yes)", 0, "`reverse` must be true or false"),
    (
        "a=shuffle(1,2,seed=-1)",
        0,
        "`seed` must be a non-negative integer",
    ),
    ("a=int(abc)", 0, "cannot convert `\"abc\"` with int()"),
    ("a=bool(maybe)", 0, "cannot convert"),
    ("a=str(range(1,3))", 0, "a range can only be cast to int or float"),
    (
        "a=[choice(1,2)]",
        0,
        "a choice sweep cannot be used inside a list",
    ),
    ("a={k:range(3)}", 0, "a range sweep cannot be used inside a map"),
    ("a=1,range(3)", 0, "a range sweep cannot be one of several values"),
    ("a=inf", 0, "JSON parameters cannot hold"),
    ("a=nan", 0, "JSON parameters cannot hold"),
    ("a=99999999999999999999", 0, "out of the 64-bit range"),
    ("~a", 0, "deleting a key"),
    ("~a=1", 0, "deleting a key"),
    ("db/mysql=1", 0, "config groups"),
    ("a@pkg=1", 0, "config groups"),
];

#[test]
fn malformed_overrides_are_errors_naming_override_position_and_expectation() {
    let mut failures = Vec::new();
    for &(input, column, words) in MALFORMED {
        match Sweep::parse(&[input]) {
            Ok(s) => failures.push(format!("`{input}` parsed: {s:?}")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(&format!("`{input}`")) {
                    failures.push(format!("`{input}`: message does not name the override: {msg}"));
                }
                if !msg.contains(words) {
                    failures.push(format!("`{input}`: message lacks `{words}`: {msg}"));
                }
                match (&e, column) {
                    (OverrideError::Syntax { column: c, .. }, col) if col != 0 && *c != col => {
                        failures.push(format!("`{input}`: column {c}, expected {col}: {msg}"))
                    }
                    (OverrideError::Syntax { .. }, 0) if !words.is_empty() => failures.push(format!(
                        "`{input}`: a syntax error, expected a semantic one: {msg}"
                    )),
                    (OverrideError::Invalid { .. }, col) if col != 0 => {
                        failures.push(format!("`{input}`: not a syntax error: {msg}"))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn several_overrides_in_one_string_and_constants_in_every_run() {
    let sweep = Sweep::parse(&["lr=0.1,0.2,batch=32", "+model.kind=[a,b]", "++seed=range(2)"]).unwrap();
    let keys: Vec<&str> = sweep.overrides().iter().map(|o| o.key()).collect();
    assert_eq!(keys, ["lr", "batch", "model.kind", "seed"]);
    assert_eq!(sweep.varying_keys(), ["lr", "seed"]);
    assert_eq!(sweep.run_count().unwrap(), 4);
    let runs: Vec<Value> = sweep.expand(DEFAULT_MAX_RUNS).unwrap().collect();
    assert_eq!(
        runs,
        [
            json!({"lr": 0.1, "batch": 32, "model": {"kind": ["a", "b"]}, "seed": 0}),
            json!({"lr": 0.1, "batch": 32, "model": {"kind": ["a", "b"]}, "seed": 1}),
            json!({"lr": 0.2, "batch": 32, "model": {"kind": ["a", "b"]}, "seed": 0}),
            json!({"lr": 0.2, "batch": 32, "model": {"kind": ["a", "b"]}, "seed": 1}),
        ]
    );
    // A key given again keeps its place and takes the new values.
    let again = Sweep::parse(&["a=1,2", "b=3", "a=5"]).unwrap();
    let runs: Vec<Value> = again.expand(10).unwrap().collect();
    assert_eq!(runs, [json!({"a": 5, "b": 3})]);
    // `choice(x)` of one value is a sweep of one run, a constant is not.
    let one = Sweep::parse(&["a=choice(1)", "b=1"]).unwrap();
    assert!(one.overrides()[0].is_sweep() && !one.overrides()[1].is_sweep());
    // Nesting under a plain value is refused before expansion.
    let err = Sweep::parse(&["a=1", "a.b=2"]).unwrap().expand(10).unwrap_err();
    assert!(err.to_string().contains("`a.b` nests under `a`"), "{err}");
    let ok = Sweep::parse(&["a={x:1}", "a.y=2"]).unwrap();
    assert_eq!(
        ok.expand(10).unwrap().next(),
        Some(json!({"a": {"x": 1, "y": 2}}))
    );
}

#[test]
fn run_counts_are_arithmetic_and_bounded_before_allocation() {
    // 10^10 runs: counted, refused, and nothing enumerated (this used to
    // abort the process allocating 720 GB).
    let huge = Sweep::parse(&["a=range(0,100000)", "b=range(0,100000)"]).unwrap();
    assert_eq!(huge.run_count().unwrap(), 10_000_000_000);
    let err = huge.expand(DEFAULT_MAX_RUNS).unwrap_err();
    let OverrideError::TooManyRuns { ref count, limit } = err else {
        panic!("{err}")
    };
    assert_eq!((count.as_str(), limit), ("10000000000", 10_000));
    let msg = err.to_string();
    assert!(
        msg.contains("10000000000 runs") && msg.contains("--max-runs"),
        "{msg}"
    );
    // Ranges far beyond memory are counted exactly, in ints and floats.
    let big = Sweep::parse(&["a=range(0,9000000000000000000)", "b=range(0,1,0.000001)"]).unwrap();
    assert_eq!(
        big.run_count().unwrap(),
        9_000_000_000_000_000_000u128 * 1_000_000
    );
    // The product overflowing 128 bits is a clean error too.
    let r = "range(0,9000000000000000000)";
    let over = Sweep::parse(&[format!("a={r}"), format!("b={r}"), format!("c={r}")]).unwrap();
    let err = over.expand(u64::MAX).unwrap_err();
    assert!(err.to_string().contains("more than 2^128"), "{err}");
    // The limit can be raised, and the expansion is lazy and exact-sized.
    let ten_k = Sweep::parse(&["a=range(100)", "b=range(0,10,0.1)", "c=x"]).unwrap();
    assert!(matches!(
        ten_k.expand(9_999),
        Err(OverrideError::TooManyRuns { .. })
    ));
    let runs = ten_k.expand(10_000).unwrap();
    assert_eq!(runs.len(), 10_000);
    let last = runs.last().unwrap();
    assert_eq!(last, json!({"a": 99, "b": 9.9, "c": "x"}));
    // An empty sweep is an error naming it, not zero runs.
    let err = Sweep::parse(&["a=1,2", "b=range(5,1)"])
        .unwrap()
        .run_count()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`b=range(5,1)`: the sweep has no values"),
        "{err}"
    );
}

#[test]
fn runtime_params_take_the_same_values() {
    assert_eq!(
        parse_runtime_params("a=[1,2],b.c=x").unwrap(),
        json!({"a": [1, 2], "b": {"c": "x"}})
    );
    assert_eq!(
        parse_runtime_params("d={x:1,y:[2,3]},s='a,b',t=\"c,d\",u=a\\,b,f=${x:1,2}").unwrap(),
        json!({"d": {"x": 1, "y": [2, 3]}, "s": "a,b", "t": "c,d", "u": "a,b", "f": "${x:1,2}"})
    );
    // Kedro's separators stay: `=` or `:`, the first wins; `=` is allowed
    // inside a value; an empty value is null; empty items are skipped.
    assert_eq!(
        parse_runtime_params("a:b=c,url=http://h:1,e:true,n=,, x . y = 2 ").unwrap(),
        json!({"a": "b=c", "url": "http://h:1", "e": true, "n": null, "x": {"y": 2}})
    );
    // Top-level values stay Kedro's free text: any character but a
    // separating comma, unknown `name(...)` is text, `\,` is a comma.
    assert_eq!(
        parse_runtime_params(r"name=café,msg=hello world!,f=f(x),q=a#b;c,p=C:\data\x,w=1\,5,i=int('5')")
            .unwrap(),
        json!({"name": "café", "msg": "hello world!", "f": "f(x)", "q": "a#b;c", "p": "C:\\data\\x", "w": "1,5", "i": 5})
    );
    for (bad, words) in [
        ("a..b=1", "empty segment"),
        (".a=1", "empty segment"),
        ("a.=1", "empty segment"),
        ("=1", "name before the separator is empty"),
        (
            "a=1,2",
            "several values for `a` (a sweep) are for `weft multirun`",
        ),
    ] {
        let err = parse_runtime_params(bad).unwrap_err();
        assert!(matches!(err, ConfigError::RuntimeParams { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains(words), "{bad}: {err}");
    }
    for (bad, words) in [
        ("a=[1,2", "expected `,` or `]`, found the end"),
        ("a=choice(1,2)", "sweeps are for `weft multirun`"),
        ("a='x", "closing '"),
    ] {
        let err = parse_runtime_params(bad).unwrap_err();
        let ConfigError::RuntimeParamValue { ref item, ref source } = err else {
            panic!("{bad}: {err:?}")
        };
        assert_eq!(item, bad);
        assert!(source.to_string().contains(words), "{bad}: {source}");
    }
}

#[test]
fn sweep_files_use_the_same_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.yml");
    std::fs::write(
        &path,
        "lr: [0.1, 0.2]\nbatch: \"range(16,49,16)\"\nopt: \"sort(sgd,adam)\"\nname: fixed\n",
    )
    .unwrap();
    let sweep = Sweep::from_file(&path).unwrap();
    assert_eq!(sweep.run_count().unwrap(), 12);
    let first = sweep.expand(100).unwrap().next().unwrap();
    assert_eq!(
        first,
        json!({"lr": 0.1, "batch": 16, "opt": "adam", "name": "fixed"})
    );
    std::fs::write(&path, "- a\n").unwrap();
    let err = Sweep::from_file(&path).unwrap_err();
    assert!(err.to_string().contains("must be a map"), "{err}");
    std::fs::write(&path, "a: []\n").unwrap();
    assert!(
        Sweep::from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("`a` has no values")
    );
    let err = Sweep::from_file(&dir.path().join("missing.yml")).unwrap_err();
    assert!(
        std::error::Error::source(&err).is_some(),
        "the read error is kept: {err}"
    );
}
