//! Nodes that ask the run's caller for input (`await_input`).
//!
//! An `await_input` node carries an [`InputRequest`] (a prompt and a JSON
//! Schema for the expected payload). Run without an answer, it fails with
//! [`InputRequired`]: the session records the run as `input_required` and
//! whoever started it (a terminal prompt, `weft run --input`, `POST
//! /v1/runs/{id}/input`) answers. The answered run is prepared again with
//! [`Pipeline::answered`], where each answered node becomes a node that
//! outputs the payload, and runs from the start under the same run id:
//! nodes are deterministic functions of their inputs, so the nodes before
//! the question compute the same values again.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::Data;
use crate::error::PipelineError;
use crate::node::{IntoNames, Node, NodeBuilder, Ports, Signature, dyn_fn};
use crate::pipeline::Pipeline;

/// What an `await_input` node asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRequest {
    /// Shown to whoever answers.
    pub prompt: String,
    /// A JSON Schema the payload must match (`{}` accepts anything).
    pub schema: Value,
}

/// The error an unanswered `await_input` node fails with; sessions turn it
/// into a run that waits for input instead of a failed one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("node `{node}` waits for input: {}", .request.prompt)]
pub struct InputRequired {
    /// The node's full name.
    pub node: String,
    /// What it asks for.
    pub request: InputRequest,
}

impl InputRequired {
    /// Finds an [`InputRequired`] in an error's `source()` chain.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a InputRequired> {
        let mut cur = Some(error);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<InputRequired>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

/// The registered name of `await_input` nodes' function.
pub const AWAIT_INPUT: &str = "await_input";

/// Starts an `await_input` node: it waits for `inputs` (any number, only
/// for ordering), asks `prompt`, and outputs the answer (a JSON value
/// matching `schema`) as its one output.
///
/// ```
/// use weft_pipeline::await_input;
/// let n = await_input("Approve?", serde_json::json!({"type": "boolean"}), "report", "approved")
///     .name("approve")
///     .build()
///     .unwrap();
/// assert_eq!(n.input_request().unwrap().prompt, "Approve?");
/// ```
pub fn await_input(
    prompt: impl Into<String>,
    schema: Value,
    inputs: impl IntoNames,
    output: impl Into<String>,
) -> NodeBuilder {
    let request = InputRequest {
        prompt: prompt.into(),
        schema,
    };
    let asked = request.clone();
    let func = dyn_fn(
        Signature {
            inputs: Ports::Variadic(None),
            outputs: Ports::Fixed(vec![None]),
        },
        move |call| {
            Err(Box::new(InputRequired {
                node: call.node.to_string(),
                request: asked.clone(),
            }))
        },
    );
    NodeBuilder::from_dyn(AWAIT_INPUT, func, inputs, vec![output.into()]).awaiting(Arc::new(request))
}

impl Pipeline {
    /// The same pipeline where each answered `await_input` node (by full
    /// name) outputs its answer instead of asking. Every problem is reported
    /// at once: a name that is not a node of the pipeline, or a node that
    /// does not wait for input. Checking the answer against the node's
    /// schema is the caller's business (sessions do it).
    pub fn answered(&self, answers: &BTreeMap<String, Value>) -> Result<Pipeline, PipelineError> {
        if answers.is_empty() {
            return Ok(self.clone());
        }
        let mut problems = Vec::new();
        for name in answers.keys() {
            match self.node(name) {
                None => problems.push(format!("`{name}` is not a node of the pipeline")),
                Some(n) if n.input_request().is_none() => problems.push(format!(
                    "node `{name}` does not wait for input (only `{AWAIT_INPUT}` nodes take answers)"
                )),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(PipelineError::Answers { problems });
        }
        let nodes: Vec<Node> = self
            .nodes()
            .iter()
            .map(|n| match answers.get(n.name()) {
                Some(answer) => n.answered_with(answer.clone()),
                None => n.clone(),
            })
            .collect();
        Pipeline::new(nodes)
    }

    /// The pipeline's `await_input` nodes with what they ask, in
    /// topological order.
    pub fn input_requests(&self) -> Vec<(&str, &InputRequest)> {
        self.nodes()
            .iter()
            .filter_map(|n| n.input_request().map(|r| (n.name(), r)))
            .collect()
    }
}

impl Node {
    /// A copy whose function outputs `answer` (as a `serde_json::Value`)
    /// and no longer asks.
    fn answered_with(&self, answer: Value) -> Node {
        let data = Data::new(answer);
        let mut n = self.clone();
        n.func = dyn_fn(n.signature.clone(), move |_| Ok(vec![data.clone()]));
        n.input_request = None;
        n
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::node::{CancelToken, node};

    fn double(x: &Value) -> i64 {
        x.as_i64().unwrap_or(0) * 2
    }

    fn pipeline() -> Pipeline {
        Pipeline::new([
            await_input("How many?", json!({"type": "integer"}), Vec::<String>::new(), "n")
                .name("ask")
                .build()
                .unwrap(),
            node(double, "n", "twice").name("double").build().unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn an_unanswered_node_fails_with_input_required() {
        let p = pipeline();
        let ask = p.node("ask").unwrap();
        let err = ask.run(vec![], &CancelToken::new()).unwrap_err();
        let found = InputRequired::find(err.as_ref()).expect("the error is InputRequired");
        assert_eq!(found.node, "ask");
        assert_eq!(found.request.schema, json!({"type": "integer"}));
        assert_eq!(err.to_string(), "node `ask` waits for input: How many?");
        assert_eq!(p.input_requests().len(), 1);
    }

    #[test]
    fn an_answered_node_outputs_its_answer() {
        let p = pipeline()
            .answered(&BTreeMap::from([("ask".to_string(), json!(21))]))
            .unwrap();
        let ask = p.node("ask").unwrap();
        assert!(ask.input_request().is_none());
        let out = ask.run(vec![], &CancelToken::new()).unwrap();
        assert_eq!(out[0].downcast_ref::<Value>(), Some(&json!(21)));
        assert!(p.input_requests().is_empty());
        // The wiring is unchanged.
        assert_eq!(p.node("double").unwrap().inputs(), ["n"]);
    }

    #[test]
    fn answers_to_unknown_or_ordinary_nodes_are_all_reported() {
        let answers = BTreeMap::from([("nope".to_string(), json!(1)), ("double".to_string(), json!(2))]);
        let err = pipeline().answered(&answers).unwrap_err().to_string();
        assert!(err.contains("`nope` is not a node of the pipeline"), "{err}");
        assert!(err.contains("node `double` does not wait for input"), "{err}");
    }
}
