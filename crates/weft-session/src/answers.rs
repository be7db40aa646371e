//! Answers to `await_input` nodes: the JSON Schema check shared by
//! `pipelines.yml` (the schema itself), run preparation, the CLI's prompt
//! and `weft serve`'s `POST /v1/runs/{id}/input`.

use serde::Serialize;
use serde_json::Value;

/// One way an answer does not match its schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerProblem {
    /// JSON Pointer of the offending value in the answer (`""` for the
    /// whole answer, `/items/0/name` for a nested one).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for AnswerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "at {}: {}", self.path, self.message)
        }
    }
}

/// Whether `schema` is a JSON Schema weft can check answers against
/// (remote `$ref`s are not fetched: they are an error).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON Schema: {e}"))
}

/// Every way `answer` breaks `schema`, an `await_input` node's JSON Schema
/// ([`weft_pipeline::InputRequest::schema`]; empty when it matches).
pub fn check_answer(schema: &Value, answer: &Value) -> Vec<AnswerProblem> {
    match jsonschema::validator_for(schema) {
        Err(e) => vec![AnswerProblem {
            path: String::new(),
            message: format!("the node's schema is invalid: {e}"),
        }],
        Ok(validator) => validator
            .iter_errors(answer)
            .map(|e| AnswerProblem {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
                "type": "object",
                "properties": {"approved": {"type": "boolean"}, "score": {"minimum": 5}},
                "required": ["approved"]
        })
    }

    #[test]
    fn a_matching_answer_has_no_problems() {
        assert!(check_answer(&schema(), &json!({"approved": true, "score": 7})).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = check_answer(&schema(), &json!({"score": 1}));
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{shown:?}");
        assert!(
            shown
                .iter()
                .any(|p| p.contains("\"approved\" is a required property")),
            "{shown:?}"
        );
        assert!(problems.iter().any(|p| p.path == "/score"), "{shown:?}");
    }

    #[test]
    fn invalid_schemas_are_refused() {
        assert!(check_schema(&json!({"type": "integer"})).is_ok());
        let err = check_schema(&json!({"type": 12})).unwrap_err();
        assert!(err.starts_with("invalid JSON Schema"), "{err}");
        let err = check_schema(&json!({"$ref": "https://example.com/schema.json"})).unwrap_err();
        assert!(err.starts_with("invalid JSON Schema"), "{err}");
    }
}
