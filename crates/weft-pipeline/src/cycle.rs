//! Cyclic pipelines: a sub-pipeline that repeats until a condition holds.
//!
//! A cycle is one [`Node`] from outside, so the rest of the pipeline stays a
//! DAG and every runner runs it (independent cycles run in parallel under the
//! thread runner). Inside, the body's nodes run in topological order on
//! in-memory values: no catalog, no hooks, no dataset I/O per iteration.
//!
//! - **state**: `x ← x_next` means iteration k+1 reads as `x` what iteration
//!   k wrote as `x_next`; iteration 1 reads `x` from the cycle's input `x`.
//! - **inputs** of the cycle node: the free inputs of the body (state
//!   variables included: their initial values).
//! - **outputs**: the declared body datasets, read after the last iteration.
//! - **converge_when**: a [`Condition`] (`delta < 1e-6`, `err <= 0.01 and
//!   n > 3`) on body datasets or cycle inputs, and/or a predicate (a
//!   function returning `bool`); checked after every iteration.
//! - **max_iterations** and [`NoConvergence`] (`fail` or `warn`).
//!
//! ```
//! use weft_pipeline::{Pipeline, node, cycle::{cycle, Condition}};
//! // Newton's method for sqrt(2).
//! fn step(x: &f64) -> (f64, f64) {
//!     let next = x - (x * x - 2.0) / (2.0 * x);
//!     (next, (next - x).abs())
//! }
//! let body = Pipeline::new([node(step, "x", ["x_next", "delta"]).name("step").build().unwrap()]).unwrap();
//! let newton = cycle("newton", body)
//!     .state("x", "x_next")
//!     .max_iterations(50)
//!     .converge_when(Condition::parse("delta < 1e-12").unwrap())
//!     .outputs(["x_next"])
//!     .build()
//!     .unwrap();
//! assert_eq!(newton.inputs(), ["x"]);
//! assert_eq!(newton.outputs(), ["x_next"]);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{Data, DataType};
use crate::error::PipelineError;
use crate::node::{
    CancelToken, IntoNames, Node, NodeBuilder, NodeCall, NodeFn, NodeFnError, Ports, Signature,
};
use crate::pipeline::Pipeline;

/// The function name cycle nodes report (`Node::func_name`).
pub const CYCLE_FUNC: &str = "cycle";

/// What to do when the condition does not hold within `max_iterations`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoConvergence {
    /// The cycle node fails (the default).
    #[default]
    Fail,
    /// The cycle's outputs are those of the last iteration and the run
    /// records a warning.
    Warn,
}

impl NoConvergence {
    /// Parses `fail` or `warn`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fail" => Some(Self::Fail),
            "warn" => Some(Self::Warn),
            _ => None,
        }
    }
}

/// What a cycle did in one run: recorded on the cycle node's timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    /// Iterations run.
    pub iterations: usize,
    /// Whether the convergence condition held (false: it stopped at
    /// `max_iterations`; always false for a cycle without a condition).
    pub converged: bool,
    /// The declared limit.
    pub max_iterations: usize,
    /// What the run does when the cycle does not converge.
    pub on_no_convergence: NoConvergence,
    /// The condition, as written (empty when none).
    pub condition: String,
    /// Duration of each iteration, in milliseconds (body and condition).
    pub iteration_ms: Vec<f64>,
}

impl CycleReport {
    /// The run warning for a cycle that stopped at its limit under
    /// `on_no_convergence: warn`.
    pub fn warning(&self, node: &str) -> Option<String> {
        (!self.converged && self.on_no_convergence == NoConvergence::Warn && !self.condition.is_empty())
            .then(|| {
                format!(
                    "cycle `{node}` did not converge within {} iterations (`{}` never held); its outputs are those of the last iteration",
                    self.max_iterations, self.condition
                )
            })
    }
}

/// A comparison operator of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CompareOp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }
}

/// One `name <op> number` comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// A body dataset or cycle input holding a number.
    pub name: String,
    /// The operator.
    pub op: CompareOp,
    /// The number compared with.
    pub value: f64,
}

/// A convergence condition: comparisons joined by `and` / `or` (`and`
/// binds tighter), e.g. `delta < 1e-6 or iteration_error <= 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Alternatives (`or`), each a conjunction (`and`) of comparisons.
    pub any_of: Vec<Vec<Comparison>>,
    text: String,
}

/// Why a condition did not parse: what and where (0-based character offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSyntax {
    /// What is wrong.
    pub message: String,
    /// Where, as a character offset into the text.
    pub at: usize,
}

impl fmt::Display for ConditionSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Name(String),
    Number(f64),
    Op(CompareOp),
    And,
    Or,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || "_.:@".contains(c)
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionSyntax> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if "<>=!".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let op = match (c, two) {
                ('<', false) => CompareOp::Lt,
                ('<', true) => CompareOp::Le,
                ('>', false) => CompareOp::Gt,
                ('>', true) => CompareOp::Ge,
                ('=', true) => CompareOp::Eq,
                ('!', true) => CompareOp::Ne,
                _ => {
                    return Err(ConditionSyntax {
                        message: format!("`{c}` is not an operator (use <, <=, >, >=, == or !=)"),
                        at: i,
                    });
                }
            };
            i += if two { 2 } else { 1 };
            tokens.push((start, Token::Op(op)));
        } else if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' {
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let value: f64 = word.parse().map_err(|_| ConditionSyntax {
                message: format!("`{word}` is not a number"),
                at: start,
            })?;
            tokens.push((start, Token::Number(value)));
        } else if is_name_char(c) {
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push((
                start,
                match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    _ => Token::Name(word),
                },
            ));
        } else {
            return Err(ConditionSyntax {
                message: format!("unexpected `{c}`"),
                at: i,
            });
        }
    }
    Ok(tokens)
}

impl Condition {
    /// Parses `name <op> number` comparisons joined by `and` / `or`.
    pub fn parse(text: &str) -> Result<Condition, ConditionSyntax> {
        let tokens = tokenize(text)?;
        let end = text.chars().count();
        let mut any_of = vec![Vec::new()];
        let mut k = 0;
        loop {
            let at = |k: usize| tokens.get(k).map_or(end, |(p, _)| *p);
            let name = match tokens.get(k) {
                Some((_, Token::Name(n))) => n.clone(),
                Some((p, t)) => {
                    return Err(ConditionSyntax {
                        message: format!("expected a dataset or parameter name, found {}", describe(t)),
                        at: *p,
                    });
                }
                None => {
                    return Err(ConditionSyntax {
                        message: "expected a comparison such as `delta < 1e-6`".into(),
                        at: end,
                    });
                }
            };
            let op = match tokens.get(k + 1) {
                Some((_, Token::Op(op))) => *op,
                _ => {
                    return Err(ConditionSyntax {
                        message: format!("expected a comparison operator after `{name}`"),
                        at: at(k + 1),
                    });
                }
            };
            let value = match tokens.get(k + 2) {
                Some((_, Token::Number(v))) => *v,
                _ => {
                    return Err(ConditionSyntax {
                        message: format!("expected a number after `{name} {}`", op.symbol()),
                        at: at(k + 2),
                    });
                }
            };
            any_of
                .last_mut()
                .expect("there is always a current conjunction")
                .push(Comparison { name, op, value });
            k += 3;
            match tokens.get(k) {
                None => break,
                Some((_, Token::And)) => k += 1,
                Some((_, Token::Or)) => {
                    any_of.push(Vec::new());
                    k += 1;
                }
                Some((p, t)) => {
                    return Err(ConditionSyntax {
                        message: format!("expected `and`, `or` or the end, found {}", describe(t)),
                        at: *p,
                    });
                }
            }
        }
        Ok(Condition {
            any_of,
            text: text.trim().to_string(),
        })
    }

    /// The names the condition reads.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.any_of.iter().flatten().map(|c| c.name.as_str())
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Name(n) => format!("`{n}`"),
        Token::Number(v) => format!("the number {v}"),
        Token::Op(op) => format!("`{}`", op.symbol()),
        Token::And => "`and`".into(),
        Token::Or => "`or`".into(),
    }
}

/// A registered function used as a convergence test: it gets the named
/// datasets and returns `bool` (true = converged).
#[derive(Clone)]
pub struct Predicate {
    /// The function's name (for messages).
    pub name: String,
    /// The function.
    pub func: Arc<dyn NodeFn>,
    /// Body datasets or cycle inputs it receives, in order.
    pub inputs: Vec<String>,
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Predicate")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// Starts a cycle named `name` over `body`.
pub fn cycle(name: impl Into<String>, body: Pipeline) -> CycleBuilder {
    CycleBuilder {
        name: name.into(),
        body,
        state: Vec::new(),
        max_iterations: None,
        condition: None,
        predicate: None,
        on_no_convergence: NoConvergence::Fail,
        outputs: Vec::new(),
        tags: BTreeSet::new(),
        namespace: None,
    }
}

/// Builder of a cycle node; [`CycleBuilder::build`] checks the whole
/// declaration and reports every problem at once.
pub struct CycleBuilder {
    name: String,
    body: Pipeline,
    state: Vec<(String, String)>,
    max_iterations: Option<usize>,
    condition: Option<Condition>,
    predicate: Option<Predicate>,
    on_no_convergence: NoConvergence,
    outputs: Vec<String>,
    tags: BTreeSet<String>,
    namespace: Option<String>,
}

impl CycleBuilder {
    /// Carries `next` (a body output) into `var` (a body input) between iterations.
    pub fn state(mut self, var: impl Into<String>, next: impl Into<String>) -> Self {
        self.state.push((var.into(), next.into()));
        self
    }

    /// The iteration limit (required, at least 1).
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Stops once this condition holds.
    pub fn converge_when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Stops once this predicate returns true (together with a condition:
    /// once both hold).
    pub fn predicate(mut self, predicate: Predicate) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Fail (default) or warn when the limit is reached first.
    pub fn on_no_convergence(mut self, policy: NoConvergence) -> Self {
        self.on_no_convergence = policy;
        self
    }

    /// The body datasets the cycle outputs (default: the state's `next` names).
    pub fn outputs(mut self, outputs: impl IntoNames) -> Self {
        self.outputs = outputs.into_names();
        self
    }

    /// Tags of the cycle node.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Namespace of the cycle node.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Checks the declaration and builds the cycle node.
    pub fn build(self) -> Result<Node, PipelineError> {
        let mut problems = Vec::new();
        let body_inputs = self.body.inputs();
        let body_outputs = self.body.all_outputs();
        if self.body.is_empty() {
            problems.push("the body has no nodes".to_string());
        }
        let max_iterations = match self.max_iterations {
            Some(0) => {
                problems.push("`max_iterations` must be at least 1".into());
                1
            }
            Some(n) => n,
            None => {
                problems.push("`max_iterations` is required".into());
                1
            }
        };
        let mut seen_vars = BTreeSet::new();
        for (var, next) in &self.state {
            if !seen_vars.insert(var) {
                problems.push(format!("`state.{var}` is declared twice"));
            }
            if !body_inputs.contains(var) {
                problems.push(format!(
                    "`state.{var}`: `{var}` is not a free input of the body (free inputs: {})",
                    list(&body_inputs)
                ));
            }
            if !body_outputs.contains(next) {
                problems.push(format!(
                    "`state.{var}`: `{next}` is not an output of any body node (outputs: {})",
                    list(&body_outputs)
                ));
            }
        }
        let outputs = if self.outputs.is_empty() {
            self.state.iter().map(|(_, next)| next.clone()).collect()
        } else {
            self.outputs.clone()
        };
        if outputs.is_empty() {
            problems.push("declare `outputs` (the body datasets the cycle returns)".into());
        }
        let known = |name: &str| body_outputs.contains(name) || body_inputs.contains(name);
        for out in &outputs {
            if !known(out) {
                problems.push(format!(
                    "output `{out}` is not a dataset of the body (outputs: {})",
                    list(&body_outputs)
                ));
            }
        }
        if let Some(cond) = &self.condition {
            for name in cond.names() {
                if !known(name) {
                    problems.push(format!(
                        "`converge_when` reads `{name}`, which is neither a body output nor a cycle input"
                    ));
                }
            }
        }
        if let Some(p) = &self.predicate {
            for name in &p.inputs {
                if !known(name) {
                    problems.push(format!(
                        "predicate `{}` reads `{name}`, which is neither a body output nor a cycle input",
                        p.name
                    ));
                }
            }
            let sig = p.func.signature();
            if !sig.inputs.accepts(p.inputs.len()) || !sig.outputs.accepts(1) {
                problems.push(format!(
                    "predicate `{}` must take {} inputs and return one `bool`",
                    p.name,
                    p.inputs.len()
                ));
            }
        }
        if self.condition.is_none()
            && self.predicate.is_none()
            && self.on_no_convergence == NoConvergence::Fail
        {
            // Without a condition the cycle runs exactly max_iterations: fine,
            // but "fail when not converged" would always fail.
            problems.push(
                "without `converge_when` the cycle can never converge: add a condition, or set `on_no_convergence: warn` to run exactly `max_iterations`"
                    .into(),
            );
        }
        let name = match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}.{}", self.name),
            _ => self.name.clone(),
        };
        if !problems.is_empty() {
            return Err(PipelineError::InvalidCycle {
                cycle: name,
                problems,
            });
        }

        // Slots: every body dataset gets an index; inputs are filled once.
        let mut slot_of: HashMap<String, usize> = HashMap::new();
        let mut slot = |n: &str| -> usize {
            let len = slot_of.len();
            *slot_of.entry(n.to_string()).or_insert(len)
        };
        let inputs: Vec<String> = body_inputs.iter().cloned().collect();
        let input_slots: Vec<usize> = inputs.iter().map(|n| slot(n)).collect();
        let steps: Vec<Step> = self
            .body
            .nodes()
            .iter()
            .map(|n| Step {
                node: n.clone(),
                inputs: n.inputs().iter().map(|d| slot(d)).collect(),
                outputs: n.outputs().iter().map(|d| slot(d)).collect(),
            })
            .collect();
        let state: Vec<(usize, usize)> = self.state.iter().map(|(v, nx)| (slot(v), slot(nx))).collect();
        let output_slots: Vec<usize> = outputs.iter().map(|n| slot(n)).collect();
        let condition = self.condition.as_ref().map(|c| {
            c.any_of
                .iter()
                .map(|all| {
                    all.iter()
                        .map(|cmp| (slot(&cmp.name), cmp.op, cmp.value))
                        .collect()
                })
                .collect()
        });
        let predicate = self
            .predicate
            .as_ref()
            .map(|p| (p.clone(), p.inputs.iter().map(|n| slot(n)).collect()));
        let mut slot_names = vec![String::new(); slot_of.len()];
        for (n, i) in &slot_of {
            slot_names[*i].clone_from(n);
        }
        let input_types = inputs
            .iter()
            .map(|d| {
                self.body.nodes().iter().find_map(|n| {
                    n.inputs()
                        .iter()
                        .position(|i| i == d)
                        .and_then(|k| n.input_type(k))
                })
            })
            .collect();
        let output_types = outputs
            .iter()
            .map(|d| {
                self.body.producer_of(d).and_then(|n| {
                    n.outputs()
                        .iter()
                        .position(|o| o == d)
                        .and_then(|k| n.output_type(k))
                })
            })
            .collect();
        let text = match (&self.condition, &self.predicate) {
            (Some(c), Some(p)) => format!("{} and {}({})", c.text(), p.name, p.inputs.join(", ")),
            (Some(c), None) => c.text().to_string(),
            (None, Some(p)) => format!("{}({})", p.name, p.inputs.join(", ")),
            (None, None) => String::new(),
        };
        let func = CycleFn {
            name: name.clone(),
            signature: Signature {
                inputs: Ports::Fixed(input_types),
                outputs: Ports::Fixed(output_types),
            },
            steps,
            input_slots,
            output_slots,
            state,
            slot_names,
            slots: slot_of.len(),
            max_iterations,
            condition,
            predicate,
            condition_text: text,
            on_no_convergence: self.on_no_convergence,
            body: self.body,
            state_names: self.state.into_iter().collect(),
        };
        let mut builder = NodeBuilder::from_dyn(CYCLE_FUNC, Arc::new(func), inputs, outputs)
            .name(self.name)
            .tags(self.tags);
        if let Some(ns) = self.namespace {
            builder = builder.namespace(ns);
        }
        builder.build()
    }
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Step {
    node: Node,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

type Disjunction = Vec<Vec<(usize, CompareOp, f64)>>;

/// The cycle's function: the iteration loop over precomputed slots.
struct CycleFn {
    name: String,
    signature: Signature,
    steps: Vec<Step>,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    state: Vec<(usize, usize)>,
    slot_names: Vec<String>,
    slots: usize,
    max_iterations: usize,
    condition: Option<Disjunction>,
    predicate: Option<(Predicate, Vec<usize>)>,
    condition_text: String,
    on_no_convergence: NoConvergence,
    body: Pipeline,
    state_names: BTreeMap<String, String>,
}

/// Reads a number out of a value: any Rust number type, a JSON number, or
/// anything that converts to `f64`.
fn number(data: &Data) -> Option<f64> {
    macro_rules! try_types {
        ($($t:ty),*) => {
            $( if let Some(v) = data.downcast_ref::<$t>() { return Some(*v as f64); } )*
        };
    }
    try_types!(f64, f32, i64, i32, u64, u32, usize, isize, i16, u16, i8, u8);
    if let Some(v) = data.downcast_ref::<serde_json::Value>() {
        return v.as_f64();
    }
    data.convert_to(&DataType::of::<f64>())
        .ok()
        .and_then(|d| d.downcast_ref::<f64>().copied())
}

impl CycleFn {
    fn holds(&self, slots: &[Option<Data>], iteration: usize) -> Result<bool, NodeFnError> {
        let mut verdict = true;
        if let Some(any_of) = &self.condition {
            let mut any = false;
            for all in any_of {
                let mut every = true;
                for &(s, op, v) in all {
                    let value =
                        slots[s]
                            .as_ref()
                            .and_then(number)
                            .ok_or_else(|| PipelineError::CycleCondition {
                                cycle: self.name.clone(),
                                iteration,
                                message: format!(
                                    "`converge_when` reads `{}`, which holds {} rather than a number",
                                    self.slot_names[s],
                                    slots[s].as_ref().map_or("nothing", Data::type_name)
                                ),
                            })?;
                    if !op.holds(value, v) {
                        every = false;
                        break;
                    }
                }
                if every {
                    any = true;
                    break;
                }
            }
            verdict = any;
        }
        if verdict && let Some((p, inputs)) = &self.predicate {
            let args = inputs
                .iter()
                .map(|&s| slots[s].clone().unwrap_or_else(|| Data::new(crate::data::Empty)))
                .collect();
            let cancel = CancelToken::new();
            let out = p
                .func
                .call(NodeCall {
                    node: &self.name,
                    inputs: args,
                    outputs: 1,
                    cancel: &cancel,
                })
                .map_err(|source| PipelineError::CycleNode {
                    cycle: self.name.clone(),
                    iteration,
                    node: format!("predicate `{}`", p.name),
                    source,
                })?;
            verdict = match out.first().and_then(|d| d.downcast_ref::<bool>()) {
                Some(b) => *b,
                None => {
                    return Err(PipelineError::CycleCondition {
                        cycle: self.name.clone(),
                        iteration,
                        message: format!("predicate `{}` must return one `bool`", p.name),
                    }
                    .into());
                }
            };
        }
        Ok(verdict)
    }

    fn iterate(&self, call: NodeCall<'_>) -> Result<(Vec<Data>, CycleReport), NodeFnError> {
        let mut slots: Vec<Option<Data>> = vec![None; self.slots];
        for (&s, data) in self.input_slots.iter().zip(call.inputs) {
            slots[s] = Some(data);
        }
        let mut iteration_ms = Vec::with_capacity(self.max_iterations.min(1 << 16));
        let mut converged = false;
        let mut iterations = 0;
        let mut args = Vec::new();
        while iterations < self.max_iterations {
            if call.cancel.is_cancelled() {
                return Err(PipelineError::CycleCancelled {
                    cycle: self.name.clone(),
                    iteration: iterations + 1,
                }
                .into());
            }
            let started = Instant::now();
            iterations += 1;
            for step in &self.steps {
                args.clear();
                for &s in &step.inputs {
                    // Every input slot is filled: free inputs at the start,
                    // body outputs by earlier (topologically ordered) steps.
                    args.push(slots[s].clone().unwrap_or_else(|| Data::new(crate::data::Empty)));
                }
                let outputs = step
                    .node
                    .run(std::mem::take(&mut args), call.cancel)
                    .map_err(|source| PipelineError::CycleNode {
                        cycle: self.name.clone(),
                        iteration: iterations,
                        node: step.node.name().to_string(),
                        source,
                    })?;
                for (&s, data) in step.outputs.iter().zip(outputs) {
                    slots[s] = Some(data);
                }
            }
            converged =
                (self.condition.is_some() || self.predicate.is_some()) && self.holds(&slots, iterations)?;
            iteration_ms.push(started.elapsed().as_secs_f64() * 1e3);
            if converged {
                break;
            }
            if iterations < self.max_iterations {
                for &(var, next) in &self.state {
                    slots[var] = slots[next].clone();
                }
            }
        }
        let report = CycleReport {
            iterations,
            converged,
            max_iterations: self.max_iterations,
            on_no_convergence: self.on_no_convergence,
            condition: self.condition_text.clone(),
            iteration_ms,
        };
        if !converged && self.on_no_convergence == NoConvergence::Fail {
            let last: Vec<String> = self
                .condition
                .iter()
                .flatten()
                .flatten()
                .map(|(s, _, _)| {
                    let shown = slots[*s]
                        .as_ref()
                        .and_then(number)
                        .map_or("?".into(), |v| v.to_string());
                    format!("{} = {shown}", self.slot_names[*s])
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(PipelineError::NoConvergence {
                cycle: self.name.clone(),
                iterations,
                condition: self.condition_text.clone(),
                last_values: last.join(", "),
            }
            .into());
        }
        let outputs = self
            .output_slots
            .iter()
            .map(|&s| slots[s].clone().unwrap_or_else(|| Data::new(crate::data::Empty)))
            .collect();
        Ok((outputs, report))
    }
}

impl NodeFn for CycleFn {
    fn signature(&self) -> Signature {
        self.signature.clone()
    }

    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
        self.iterate(call).map(|(outputs, _)| outputs)
    }

    fn call_detailed(&self, call: NodeCall<'_>) -> Result<(Vec<Data>, Option<CycleReport>), NodeFnError> {
        self.iterate(call)
            .map(|(outputs, report)| (outputs, Some(report)))
    }

    fn cycle(&self) -> Option<CycleInfo<'_>> {
        Some(CycleInfo {
            body: &self.body,
            state: &self.state_names,
            max_iterations: self.max_iterations,
            condition: &self.condition_text,
            on_no_convergence: self.on_no_convergence,
        })
    }
}

/// What a cycle node declares (for inspection tools and tests).
#[derive(Clone, Copy, Debug)]
pub struct CycleInfo<'a> {
    /// The repeated sub-pipeline.
    pub body: &'a Pipeline,
    /// State variable → the body output carried into it.
    pub state: &'a BTreeMap<String, String>,
    /// The iteration limit.
    pub max_iterations: usize,
    /// The convergence condition as written (empty when none).
    pub condition: &'a str,
    /// Fail or warn at the limit.
    pub on_no_convergence: NoConvergence,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::node;

    fn newton_step(x: &f64) -> (f64, f64) {
        let next = x - (x * x - 2.0) / (2.0 * x);
        (next, (next - x).abs())
    }

    fn newton(max: usize, cond: &str, policy: NoConvergence) -> Result<Node, PipelineError> {
        let body = Pipeline::new([node(newton_step, "x", ["x_next", "delta"])
            .name("step")
            .build()
            .unwrap()])
        .unwrap();
        cycle("newton", body)
            .state("x", "x_next")
            .max_iterations(max)
            .converge_when(Condition::parse(cond).unwrap())
            .on_no_convergence(policy)
            .outputs(["x_next", "delta"])
            .build()
    }

    #[test]
    fn conditions_parse_and_report_where_they_are_wrong() {
        let c = Condition::parse("delta < 1e-6").unwrap();
        assert_eq!(
            c.any_of,
            [vec![Comparison {
                name: "delta".into(),
                op: CompareOp::Lt,
                value: 1e-6
            }]]
        );
        let c = Condition::parse("a<=1 and params:b>-2.5E+3 or c != 0").unwrap();
        assert_eq!(c.any_of.len(), 2);
        assert_eq!(c.any_of[0][1].name, "params:b");
        assert_eq!(c.any_of[0][1].value, -2500.0);
        assert_eq!(c.any_of[1][0].op, CompareOp::Ne);
        assert_eq!(c.text(), "a<=1 and params:b>-2.5E+3 or c != 0");
        for (text, message, at) in [
            ("", "expected a comparison such as `delta < 1e-6`", 0),
            ("delta", "expected a comparison operator after `delta`", 5),
            ("delta < tiny", "expected a number after `delta <`", 8),
            (
                "delta = 1",
                "`=` is not an operator (use <, <=, >, >=, == or !=)",
                6,
            ),
            (
                "delta < 1 and",
                "expected a comparison such as `delta < 1e-6`",
                13,
            ),
            (
                "delta < 1 delta",
                "expected `and`, `or` or the end, found `delta`",
                10,
            ),
            ("delta < 1e-x", "`1e-x` is not a number", 8),
            ("delta < 1 # x", "unexpected `#`", 10),
            ("< 1", "expected a dataset or parameter name, found `<`", 0),
        ] {
            assert_eq!(
                Condition::parse(text),
                Err(ConditionSyntax {
                    message: message.into(),
                    at
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn newton_converges_to_sqrt_2_and_reports_its_iterations() {
        let n = newton(50, "delta < 1e-12", NoConvergence::Fail).unwrap();
        assert_eq!(n.func_name(), CYCLE_FUNC);
        assert_eq!(n.inputs(), ["x"]);
        let (out, report) = n
            .run_detailed(vec![Data::new(1.0f64)], &CancelToken::new())
            .unwrap();
        let x = *out[0].downcast_ref::<f64>().unwrap();
        assert!((x - std::f64::consts::SQRT_2).abs() < 1e-15, "{x}");
        let report = report.unwrap();
        assert!(report.converged);
        // 1 → 1.5 → 1.41667 → 1.414215686 → 1.41421356237469 → sqrt(2) → same.
        assert_eq!(report.iterations, 6, "{report:?}");
        assert_eq!(report.iteration_ms.len(), 6);
        assert_eq!(report.condition, "delta < 1e-12");
        assert!(report.warning("newton").is_none());
    }

    #[test]
    fn not_converging_fails_or_warns_as_declared() {
        let n = newton(3, "delta < 1e-12", NoConvergence::Fail).unwrap();
        let err = n.run(vec![Data::new(1.0f64)], &CancelToken::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cycle `newton` did not converge within 3 iterations")
                && msg.contains("delta < 1e-12")
                && msg.contains("delta = 0.00245"),
            "{msg}"
        );
        let n = newton(3, "delta < 1e-12", NoConvergence::Warn).unwrap();
        let (out, report) = n
            .run_detailed(vec![Data::new(1.0f64)], &CancelToken::new())
            .unwrap();
        let report = report.unwrap();
        assert!(!report.converged);
        assert_eq!(report.iterations, 3);
        assert!((out[0].downcast_ref::<f64>().unwrap() - 1.414_215_686).abs() < 1e-8);
        assert!(
            report
                .warning("newton")
                .unwrap()
                .contains("did not converge within 3")
        );
    }

    #[test]
    fn bad_declarations_list_every_problem() {
        let body = Pipeline::new([node(newton_step, "x", ["x_next", "delta"])
            .name("step")
            .build()
            .unwrap()])
        .unwrap();
        let err = cycle("c", body)
            .state("y", "x_nxt")
            .converge_when(Condition::parse("dlta < 1").unwrap())
            .outputs(["nope"])
            .build()
            .unwrap_err()
            .to_string();
        for part in [
            "invalid cycle `c`",
            "`max_iterations` is required",
            "`state.y`: `y` is not a free input of the body (free inputs: `x`)",
            "`state.y`: `x_nxt` is not an output of any body node (outputs: `delta`, `x_next`)",
            "output `nope` is not a dataset of the body",
            "`converge_when` reads `dlta`",
        ] {
            assert!(err.contains(part), "{part}\n{err}");
        }
    }

    #[test]
    fn predicates_and_body_errors() {
        let body = Pipeline::new([
            node(|x: &i64| x + 1, "x", "x_next").name("inc").build().unwrap(),
            node(
                |x: &i64| {
                    if *x > 100 {
                        Err("too big".to_string())
                    } else {
                        Ok(*x)
                    }
                },
                "x_next",
                "checked",
            )
            .name("check")
            .build()
            .unwrap(),
        ])
        .unwrap();
        let at_least = crate::node::IntoNodeFn::into_node_fn(|x: &i64| *x == 10);
        let make = |max| {
            cycle("count", body.clone())
                .state("x", "x_next")
                .max_iterations(max)
                .predicate(Predicate {
                    name: "at_least_10".into(),
                    func: at_least.clone(),
                    inputs: vec!["checked".into()],
                })
                .outputs(["checked"])
                .build()
                .unwrap()
        };
        let (out, report) = make(1000)
            .run_detailed(vec![Data::new(0i64)], &CancelToken::new())
            .unwrap();
        assert_eq!(out[0].downcast_ref::<i64>(), Some(&10));
        assert_eq!(report.unwrap().iterations, 10);
        let err = make(1000)
            .run(vec![Data::new(95i64)], &CancelToken::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cycle `count`, iteration 6, node `check`: too big"
        );
    }

    #[test]
    fn a_condition_on_a_value_that_is_no_number_is_an_error() {
        let body = Pipeline::new([node(|x: &String| format!("{x}!"), "x", "x_next")
            .name("shout")
            .build()
            .unwrap()])
        .unwrap();
        let n = cycle("c", body)
            .state("x", "x_next")
            .max_iterations(3)
            .converge_when(Condition::parse("x_next < 1").unwrap())
            .build()
            .unwrap();
        let err = n
            .run(vec![Data::new("a".to_string())], &CancelToken::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("iteration 1") && err.to_string().contains("rather than a number"),
            "{err}"
        );
    }

    #[test]
    fn cancellation_stops_between_iterations() {
        let n = newton(50, "delta < 1e-12", NoConvergence::Fail).unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        let err = n.run(vec![Data::new(1.0f64)], &cancel).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
    }
}
