//! Built-in node functions, usable from YAML pipelines without writing Rust.
//!
//! | name | inputs | outputs |
//! |---|---|---|
//! | `noop` | any | an [`Empty`] value per declared output |
//! | `identity` | any | the inputs themselves, same handles (no copy) |
//! | `add_one` | one number | the number + 1 (same numeric type; an integer overflow is an error, never a wrap) |
//! | `sum` | any number of numbers (or lists of numbers) | their sum (`i64` if all are integers; a total beyond `i64` is an error, never a wrap) |
//! | `concat` | strings or lists | one string or one list |
//! | `sleep_ms` | `ms`, then any | waits `ms` milliseconds without using CPU (on a timer, holding no thread, under the `async` runner), then passes the other inputs through |
//! | `spin_ms` | `ms`, then any | busy-works `ms` milliseconds on one core, then passes the other inputs through |
//! | `fail` | any | always fails with a message naming the node |
//! | `fill_mb` | `mb`, then any | allocates and writes `mb` MiB (for memory limits), frees it, then passes the other inputs through |
//!
//! Numbers are `i64`, `i32`, `u64`, `u32`, `f64`, `f32` or JSON numbers.

use std::time::{Duration, Instant};

use crate::data::{Data, Empty};
use crate::error::PipelineError;
use crate::node::{NodeCall, NodeFn, NodeFnError, NodeFuture, Ports, Signature, dyn_fn};
use crate::registry::FunctionRegistry;

fn any_to_any() -> Signature {
    Signature {
        inputs: Ports::Variadic(None),
        outputs: Ports::Variadic(None),
    }
}

fn fixed(inputs: usize, outputs: usize) -> Signature {
    Signature {
        inputs: Ports::Fixed(vec![None; inputs]),
        outputs: Ports::Fixed(vec![None; outputs]),
    }
}

fn variadic_to_one() -> Signature {
    Signature {
        inputs: Ports::Variadic(None),
        outputs: Ports::Fixed(vec![None]),
    }
}

/// A numeric value read from data of any numeric type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// Reads a number from data holding a Rust number or a JSON number.
    pub fn from_data(d: &Data) -> Option<Number> {
        macro_rules! ints { ($($t:ty),*) => { $( if let Some(v) = d.downcast_ref::<$t>() { return i64::try_from(*v).ok().map(Number::Int); } )* } }
        ints!(i64, i32, i16, i8, u64, u32, u16, u8, usize, isize);
        if let Some(v) = d.downcast_ref::<f64>() {
            return Some(Number::Float(*v));
        }
        if let Some(v) = d.downcast_ref::<f32>() {
            return Some(Number::Float(f64::from(*v)));
        }
        d.downcast_ref::<serde_json::Value>().and_then(Number::from_json)
    }

    fn from_json(v: &serde_json::Value) -> Option<Number> {
        v.as_i64()
            .map(Number::Int)
            .or_else(|| v.as_f64().map(Number::Float))
    }

    /// The number as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

fn number_at(call: &NodeCall<'_>, i: usize, func: &str) -> Result<Number, NodeFnError> {
    let d = &call.inputs[i];
    Number::from_data(d).ok_or_else(|| {
        format!(
            "node `{}`: `{func}` needs a number as input #{i}, got `{}`",
            call.node,
            d.type_name()
        )
        .into()
    })
}

/// Why a built-in arithmetic function refused its inputs.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// Integer arithmetic would overflow the integer type (it never wraps).
    #[error("node `{node}`: `{func}` overflows {ty}: {detail}")]
    Overflow {
        /// The node's full name.
        node: String,
        /// The built-in function (`add_one`, `sum`).
        func: &'static str,
        /// The integer type that cannot hold the result.
        ty: &'static str,
        /// The operation that overflowed.
        detail: String,
    },
}

fn overflow(call: &NodeCall<'_>, func: &'static str, ty: &'static str, detail: String) -> NodeFnError {
    Box::new(BuiltinError::Overflow {
        node: call.node.to_string(),
        func,
        ty,
        detail,
    })
}

fn add_one(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    let d = &call.inputs[0];
    macro_rules! checked_int {
        ($($t:ty),*) => {
            $(
                if let Some(v) = d.downcast_ref::<$t>() {
                    return match v.checked_add(1) {
                        Some(out) => Ok(vec![Data::new(out)]),
                        None => Err(overflow(&call, "add_one", stringify!($t), format!("{v} + 1"))),
                    };
                }
            )*
        };
    }
    checked_int!(i64, i32, i16, i8, u64, u32, u16, u8, usize, isize);
    if let Some(v) = d.downcast_ref::<f64>() {
        return Ok(vec![Data::new(*v + 1.0)]);
    }
    if let Some(v) = d.downcast_ref::<f32>() {
        return Ok(vec![Data::new(*v + 1.0)]);
    }
    if let Some(v) = d.downcast_ref::<serde_json::Value>() {
        let out = if let Some(i) = v.as_i64() {
            match i.checked_add(1) {
                Some(out) => serde_json::json!(out),
                // JSON integers above i64::MAX are u64: keep them integers.
                None => serde_json::json!(i as u64 + 1),
            }
        } else if let Some(u) = v.as_u64() {
            match u.checked_add(1) {
                Some(out) => serde_json::json!(out),
                None => return Err(overflow(&call, "add_one", "u64", format!("{u} + 1"))),
            }
        } else if let Some(f) = v.as_f64() {
            serde_json::json!(f + 1.0)
        } else {
            return Err(format!("node `{}`: `add_one` needs a number, got JSON {v}", call.node).into());
        };
        return Ok(vec![Data::new(out)]);
    }
    Err(format!(
        "node `{}`: `add_one` needs a number, got `{}`",
        call.node,
        d.type_name()
    )
    .into())
}

/// Whether `d` holds an integer (Rust or JSON) that does not fit `i64`.
fn int_beyond_i64(d: &Data) -> Option<String> {
    macro_rules! wide { ($($t:ty),*) => { $( if let Some(v) = d.downcast_ref::<$t>() { return i64::try_from(*v).is_err().then(|| v.to_string()); } )* } }
    wide!(u64, usize);
    d.downcast_ref::<serde_json::Value>()
        .and_then(|v| v.as_u64())
        .filter(|u| i64::try_from(*u).is_err())
        .map(|u| u.to_string())
}

fn sum(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    // Integers add up exactly in i128 (no input count can overflow it); the
    // total must fit i64. Only when every input is an integer: otherwise the
    // float sum is the result.
    let mut int_sum: Option<i128> = Some(0);
    let mut float_sum: f64 = 0.0;
    let mut all_int = true;
    let mut add = |n: Number| match n {
        Number::Int(i) => {
            int_sum = int_sum.and_then(|acc| acc.checked_add(i128::from(i)));
            float_sum += i as f64;
        }
        Number::Float(f) => {
            all_int = false;
            float_sum += f;
        }
    };
    for (i, d) in call.inputs.iter().enumerate() {
        if let Some(big) = int_beyond_i64(d) {
            return Err(overflow(
                &call,
                "sum",
                "i64",
                format!("input #{i} is {big}, beyond i64::MAX"),
            ));
        } else if let Some(n) = Number::from_data(d) {
            add(n);
        } else if let Some(v) = d.downcast_ref::<Vec<i64>>() {
            v.iter().for_each(|x| add(Number::Int(*x)));
        } else if let Some(v) = d.downcast_ref::<Vec<f64>>() {
            v.iter().for_each(|x| add(Number::Float(*x)));
        } else if let Some(serde_json::Value::Array(items)) = d.downcast_ref::<serde_json::Value>() {
            for item in items {
                if let Some(u) = item.as_u64().filter(|u| i64::try_from(*u).is_err()) {
                    return Err(overflow(
                        &call,
                        "sum",
                        "i64",
                        format!("input #{i} holds {u}, beyond i64::MAX"),
                    ));
                }
                add(Number::from_json(item).ok_or_else(|| {
                    format!("node `{}`: `sum` input #{i} holds a non-number {item}", call.node)
                })?);
            }
        } else {
            return Err(format!(
                "node `{}`: `sum` needs numbers, input #{i} is `{}`",
                call.node,
                d.type_name()
            )
            .into());
        }
    }
    if !all_int {
        return Ok(vec![Data::new(float_sum)]);
    }
    match int_sum.map(|total| (total, i64::try_from(total))) {
        Some((_, Ok(total))) => Ok(vec![Data::new(total)]),
        Some((total, Err(_))) => Err(overflow(&call, "sum", "i64", format!("the total is {total}"))),
        None => Err(overflow(
            &call,
            "sum",
            "i64",
            "the total is beyond i128".to_string(),
        )),
    }
}

fn concat(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    if call.inputs.iter().all(|d| d.is::<String>()) {
        let s: String = call
            .inputs
            .iter()
            .filter_map(|d| d.downcast_ref::<String>())
            .map(String::as_str)
            .collect();
        return Ok(vec![Data::new(s)]);
    }
    let mut strings = String::new();
    let mut items = Vec::new();
    let (mut saw_string, mut saw_list) = (false, false);
    for (i, d) in call.inputs.iter().enumerate() {
        match d.to_json() {
            Ok(serde_json::Value::String(s)) => {
                saw_string = true;
                strings.push_str(&s);
            }
            Ok(serde_json::Value::Array(a)) => {
                saw_list = true;
                items.extend(a);
            }
            _ => {
                return Err(format!(
                    "node `{}`: `concat` needs strings or lists, input #{i} is `{}`",
                    call.node,
                    d.type_name()
                )
                .into());
            }
        }
    }
    match (saw_string, saw_list) {
        (true, true) => Err(format!("node `{}`: `concat` cannot mix strings and lists", call.node).into()),
        (true, false) => Ok(vec![Data::new(strings)]),
        _ => Ok(vec![Data::new(serde_json::Value::Array(items))]),
    }
}

/// Passes inputs `1..` through to the outputs, padding with [`Empty`].
fn pass_through(call: &NodeCall<'_>) -> Vec<Data> {
    (0..call.outputs)
        .map(|i| {
            call.inputs
                .get(i + 1)
                .cloned()
                .unwrap_or_else(|| Data::new(Empty))
        })
        .collect()
}

fn wait_ms(call: &NodeCall<'_>, func: &str) -> Result<Duration, NodeFnError> {
    if call.inputs.is_empty() {
        return Err(format!(
            "node `{}`: `{func}` needs the number of milliseconds as its first input",
            call.node
        )
        .into());
    }
    let ms = number_at(call, 0, func)?.as_f64();
    if !(0.0..=86_400_000.0).contains(&ms) {
        return Err(format!(
            "node `{}`: `{func}` got {ms} ms; expected 0..=86400000",
            call.node
        )
        .into());
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn cancelled(call: &NodeCall<'_>) -> NodeFnError {
    format!("node `{}` was cancelled", call.node).into()
}

fn sleep_ms(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    let total = wait_ms(&call, "sleep_ms")?;
    let deadline = Instant::now() + total;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if call.cancel.is_cancelled() {
            return Err(cancelled(&call));
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
    Ok(pass_through(&call))
}

/// `sleep_ms`: blocks its thread under the sequential and thread runners,
/// waits on a Tokio timer (holding no thread) under the `async` runner.
struct SleepMs;

impl NodeFn for SleepMs {
    fn signature(&self) -> Signature {
        any_to_any()
    }
    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
        sleep_ms(call)
    }
    fn is_async(&self) -> bool {
        true
    }
    fn call_async(&self, call: NodeCall<'_>) -> NodeFuture {
        let total = match wait_ms(&call, "sleep_ms") {
            Ok(total) => total,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let outputs = pass_through(&call);
        let cancel = call.cancel.clone();
        let node = call.node.to_string();
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(total) => Ok(outputs),
                () = crate::node::cancelled(&cancel) => Err(format!("node `{node}` was cancelled").into()),
            }
        })
    }
}

fn spin_ms(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    let total = wait_ms(&call, "spin_ms")?;
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rounds: u32 = 0;
    while start.elapsed() < total {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(64) && call.cancel.is_cancelled() {
            return Err(cancelled(&call));
        }
    }
    std::hint::black_box(x);
    Ok(pass_through(&call))
}

fn fill_mb(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    if call.inputs.is_empty() {
        return Err(format!(
            "node `{}`: `fill_mb` needs the number of MiB as its first input",
            call.node
        )
        .into());
    }
    let mb = number_at(&call, 0, "fill_mb")?.as_f64();
    if !(0.0..=1_048_576.0).contains(&mb) {
        return Err(format!(
            "node `{}`: `fill_mb` got {mb} MiB; expected 0..=1048576",
            call.node
        )
        .into());
    }
    // One page-sized write per 4 KiB makes the memory resident, not just reserved.
    let mut block = vec![0u8; (mb * 1_048_576.0) as usize];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    std::hint::black_box(&block);
    Ok(pass_through(&call))
}

fn fail(call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
    let detail = call
        .inputs
        .first()
        .and_then(|d| d.downcast_ref::<String>().cloned())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Err(format!("node `{}` failed on purpose (built-in `fail`){detail}", call.node).into())
}

/// Registers every built-in function into `registry`.
pub fn register_builtins(registry: &mut FunctionRegistry) -> Result<(), PipelineError> {
    registry.register_dyn(
        "noop",
        "takes any inputs, yields an empty value for each declared output",
        dyn_fn(any_to_any(), |call| {
            Ok((0..call.outputs).map(|_| Data::new(Empty)).collect())
        }),
    )?;
    registry.register_dyn(
        "identity",
        "returns its inputs unchanged (same number of outputs as inputs)",
        dyn_fn(any_to_any(), |call| {
            if call.inputs.len() != call.outputs {
                return Err(format!(
                    "node `{}`: `identity` needs as many outputs as inputs ({} inputs, {} outputs)",
                    call.node,
                    call.inputs.len(),
                    call.outputs
                )
                .into());
            }
            Ok(call.inputs)
        }),
    )?;
    registry.register_dyn("add_one", "number + 1", dyn_fn(fixed(1, 1), add_one))?;
    registry.register_dyn("sum", "sum of numeric inputs", dyn_fn(variadic_to_one(), sum))?;
    registry.register_dyn(
        "concat",
        "concatenates strings or lists",
        dyn_fn(variadic_to_one(), concat),
    )?;
    registry.register_dyn(
        "sleep_ms",
        "waits N ms (first input) without CPU, passes the other inputs through",
        std::sync::Arc::new(SleepMs),
    )?;
    registry.register_dyn(
        "spin_ms",
        "busy-works N ms (first input) on one core, passes the other inputs through",
        dyn_fn(any_to_any(), spin_ms),
    )?;
    registry.register_dyn(
        "fail",
        "always fails with a message naming the node",
        dyn_fn(any_to_any(), fail),
    )?;
    registry.register_dyn(
        "abort",
        "aborts the whole process (for trying crash isolation: under the `process` runner only its node host dies)",
        dyn_fn(any_to_any(), |_| std::process::abort()),
    )?;
    registry.register_dyn(
        "fill_mb",
        "allocates and writes N MiB (first input), passes the other inputs through",
        dyn_fn(any_to_any(), fill_mb),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::CancelToken;

    fn run(func: &str, inputs: Vec<Data>, outputs: usize) -> Result<Vec<Data>, NodeFnError> {
        let registry = FunctionRegistry::with_builtins();
        let outs: Vec<String> = (0..outputs).map(|i| format!("o{i}")).collect();
        let ins: Vec<String> = (0..inputs.len()).map(|i| format!("i{i}")).collect();
        let node = registry.node(func, ins, outs).unwrap().name("n").build().unwrap();
        node.run(inputs, &CancelToken::new())
    }

    #[test]
    fn arithmetic() {
        let out = run("add_one", vec![Data::new(41i64)], 1).unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&42));
        let out = run("add_one", vec![Data::new(serde_json::json!(1.5))], 1).unwrap();
        assert_eq!(
            out[0].downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!(2.5))
        );
        let out = run(
            "sum",
            vec![Data::new(1i64), Data::new(2i32), Data::new(vec![3i64, 4])],
            1,
        )
        .unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&10));
        let out = run("sum", vec![Data::new(1i64), Data::new(0.5f64)], 1).unwrap();
        assert_eq!(out[0].downcast_ref::<f64>(), Some(&1.5));
        let err = run("add_one", vec![Data::new("x".to_string())], 1).unwrap_err();
        assert!(err.to_string().contains("node `n`"), "{err}");
    }

    fn overflow_of(err: &NodeFnError) -> (&str, &'static str, &'static str) {
        match err.downcast_ref::<BuiltinError>() {
            Some(BuiltinError::Overflow { node, func, ty, .. }) => (node.as_str(), *func, *ty),
            None => panic!("expected an overflow error, got {err}"),
        }
    }

    #[test]
    fn add_one_fails_on_overflow_instead_of_wrapping() {
        for (input, ty) in [
            (Data::new(i64::MAX), "i64"),
            (Data::new(i32::MAX), "i32"),
            (Data::new(u64::MAX), "u64"),
            (Data::new(u32::MAX), "u32"),
            (Data::new(usize::MAX), "usize"),
            (Data::new(u8::MAX), "u8"),
            (Data::new(serde_json::json!(u64::MAX)), "u64"),
        ] {
            let err = run("add_one", vec![input], 1).unwrap_err();
            assert_eq!(overflow_of(&err), ("n", "add_one", ty), "{err}");
            assert!(err.to_string().contains("overflows"), "{err}");
        }
        // The largest values that still fit keep their integer type.
        let out = run("add_one", vec![Data::new(i64::MAX - 1)], 1).unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&i64::MAX));
        let out = run("add_one", vec![Data::new(u8::MAX - 1)], 1).unwrap();
        assert_eq!(out[0].downcast_ref::<u8>(), Some(&u8::MAX));
        let out = run("add_one", vec![Data::new(serde_json::json!(i64::MAX))], 1).unwrap();
        assert_eq!(
            out[0].downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!(i64::MAX as u64 + 1))
        );
    }

    #[test]
    fn sum_fails_on_overflow_instead_of_wrapping() {
        let err = run("sum", vec![Data::new(i64::MAX), Data::new(1i64)], 1).unwrap_err();
        assert_eq!(overflow_of(&err), ("n", "sum", "i64"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("the total is {}", i64::MAX as i128 + 1)),
            "{err}"
        );
        let err = run("sum", vec![Data::new(vec![i64::MIN, -1])], 1).unwrap_err();
        assert_eq!(overflow_of(&err), ("n", "sum", "i64"), "{err}");
        let err = run("sum", vec![Data::new(serde_json::json!([i64::MAX, 1]))], 1).unwrap_err();
        assert_eq!(overflow_of(&err), ("n", "sum", "i64"), "{err}");
        // Integers beyond i64 are refused, not summed as floats or dropped.
        let err = run("sum", vec![Data::new(u64::MAX), Data::new(1i64)], 1).unwrap_err();
        assert_eq!(overflow_of(&err), ("n", "sum", "i64"), "{err}");
        let err = run("sum", vec![Data::new(serde_json::json!(u64::MAX))], 1).unwrap_err();
        assert_eq!(overflow_of(&err), ("n", "sum", "i64"), "{err}");
        // The total counts, not the order: going past the range mid-way and
        // coming back is the exact result.
        let out = run(
            "sum",
            vec![Data::new(i64::MAX), Data::new(1i64), Data::new(-1i64)],
            1,
        )
        .unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&i64::MAX));
        // With a float among the inputs the result is a float: no overflow.
        let out = run(
            "sum",
            vec![Data::new(i64::MAX), Data::new(i64::MAX), Data::new(0.5f64)],
            1,
        )
        .unwrap();
        assert_eq!(out[0].downcast_ref::<f64>(), Some(&(2.0 * i64::MAX as f64 + 0.5)));
        // Sums at the edge of the range still work.
        let out = run("sum", vec![Data::new(i64::MAX - 1), Data::new(1i64)], 1).unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&i64::MAX));
    }

    #[test]
    fn identity_noop_concat() {
        let d = Data::new(vec![1i64]);
        let out = run("identity", vec![d.clone()], 1).unwrap();
        assert!(out[0].ptr_eq(&d));
        let out = run("noop", vec![d], 2).unwrap();
        assert!(out.iter().all(|o| o.is::<Empty>()));
        let out = run(
            "concat",
            vec![Data::new("a".to_string()), Data::new("b".to_string())],
            1,
        )
        .unwrap();
        assert_eq!(out[0].downcast_ref::<String>().unwrap(), "ab");
        let out = run(
            "concat",
            vec![Data::new(vec![1i64]), Data::new(serde_json::json!([2]))],
            1,
        )
        .unwrap();
        assert_eq!(
            out[0].downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!([1, 2]))
        );
        assert!(run("concat", vec![Data::new(1i64)], 1).is_err());
    }

    #[test]
    fn sleep_and_spin_pass_through_and_wait() {
        let start = Instant::now();
        let out = run("sleep_ms", vec![Data::new(20i64), Data::new(7i64)], 1).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&7));
        let start = Instant::now();
        let out = run("spin_ms", vec![Data::new(10i64)], 1).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert!(out[0].is::<Empty>());
        assert!(run("sleep_ms", vec![Data::new(-1i64)], 0).is_err());
    }

    #[test]
    fn sleep_is_cancellable() {
        let registry = FunctionRegistry::with_builtins();
        let node = registry
            .node("sleep_ms", ["ms"], ())
            .unwrap()
            .name("s")
            .build()
            .unwrap();
        let token = CancelToken::new();
        token.cancel();
        let err = node.run(vec![Data::new(10_000i64)], &token).unwrap_err();
        assert_eq!(err.to_string(), "node `s` was cancelled");
    }

    #[test]
    fn fail_names_the_node() {
        let err = run("fail", vec![], 1).unwrap_err();
        assert_eq!(err.to_string(), "node `n` failed on purpose (built-in `fail`)");
    }
}
