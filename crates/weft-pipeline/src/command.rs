//! Command nodes: a node that runs an executable on the files of its
//! datasets instead of a Rust function on their values.
//!
//! This module holds only the declaration (the argument templates, `env`,
//! `cwd`, `timeout`): running it needs the catalog's files, so runners do
//! it (see `weft-command`). A template is an argument with placeholders:
//! `{inputs.KEY}` and `{outputs.KEY}` become the file path of the input or
//! output declared under `KEY` (the map key, or the dataset name in list
//! form), `{params.NAME}` becomes the value of the parameter `params:NAME`
//! (which joins the node's inputs, so namespaces and the DAG see it).
//!
//! ```
//! use weft_pipeline::command::{CommandDecl, command};
//! let decl = CommandDecl::new(["python3", "train.py", "{inputs.features}", "{outputs.model}", "--lr={params.lr}"]);
//! let n = command(decl, [("features", "model_input")], [("model", "regressor")])
//!     .unwrap()
//!     .name("train")
//!     .build()
//!     .unwrap();
//! assert_eq!(n.inputs(), ["model_input", "params:lr"]);
//! assert!(n.command().is_some());
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Data;
use crate::error::PipelineError;
use crate::node::{NodeBuilder, NodeCall, NodeFn, NodeFnError, Ports, Signature};

/// The function name command nodes show (`weft inspect`, node default names).
pub const COMMAND: &str = "command";

/// One piece of an argument template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// The file path of the node's input at this index.
    InputPath(usize),
    /// The file path of the node's output at this index.
    OutputPath(usize),
    /// The value of the node's input at this index (a `params:` dataset).
    Value(usize),
}

/// An argument (or environment value) with placeholders resolved to the
/// node's input and output positions, so renaming datasets (namespaces)
/// keeps it valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    pub pieces: Vec<Piece>,
    /// The text as written (for messages).
    pub source: String,
}

/// What a command node runs, with placeholders resolved (see [`command`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (first element) and its arguments.
    pub argv: Vec<Template>,
    /// Extra environment variables for the child (it inherits the rest).
    pub env: BTreeMap<String, Template>,
    /// The child's working directory (`None`: the runner's).
    pub cwd: Option<PathBuf>,
    /// Kill the child (and its process group) after this long.
    pub timeout: Option<Duration>,
}

impl CommandSpec {
    /// The indexes of the inputs whose *file* the command needs (those
    /// referenced only as `{params.x}` values need none).
    pub fn input_files(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .templates()
            .flat_map(|t| &t.pieces)
            .filter_map(|p| match p {
                Piece::InputPath(i) => Some(*i),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every template: the arguments, then the environment values.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.argv.iter().chain(self.env.values())
    }
}

/// A command node as declared, before placeholders are resolved.
#[derive(Clone, Debug, Default)]
pub struct CommandDecl {
    /// Program and arguments, with placeholders.
    pub argv: Vec<String>,
    /// Extra environment variables (values may hold placeholders).
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Time limit.
    pub timeout: Option<Duration>,
}

impl CommandDecl {
    /// A command with this program and arguments.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        CommandDecl {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Starts a command node. `inputs` and `outputs` are `(key, dataset)`
/// pairs (the key is what placeholders name; in list form use the dataset
/// name as key). Every problem is reported at once: an empty command, a
/// placeholder naming no declared key, a malformed placeholder, two
/// datasets under one key.
pub fn command<K1, D1, K2, D2>(
    decl: CommandDecl,
    inputs: impl IntoIterator<Item = (K1, D1)>,
    outputs: impl IntoIterator<Item = (K2, D2)>,
) -> Result<NodeBuilder, PipelineError>
where
    K1: Into<String>,
    D1: Into<String>,
    K2: Into<String>,
    D2: Into<String>,
{
    let mut inputs: Vec<(String, String)> = inputs.into_iter().map(|(k, d)| (k.into(), d.into())).collect();
    let outputs: Vec<(String, String)> = outputs.into_iter().map(|(k, d)| (k.into(), d.into())).collect();
    let mut problems = Vec::new();
    for (what, ports) in [("inputs", &inputs), ("outputs", &outputs)] {
        for (i, (key, _)) in ports.iter().enumerate() {
            if ports[..i].iter().any(|(k, _)| k == key) {
                problems.push(format!("`{what}` names the key `{key}` twice"));
            }
        }
    }
    if decl.argv.first().is_none_or(|p| p.trim().is_empty()) {
        problems
            .push("`command` needs a program: a non-empty list such as [\"python3\", \"script.py\"]".into());
    }
    if decl.timeout.is_some_and(|t| t.is_zero()) {
        problems.push("`timeout` must be more than zero".into());
    }
    let mut parse = |text: &str, problems: &mut Vec<String>| -> Template {
        parse_template(text, &mut inputs, &outputs, problems)
    };
    let argv: Vec<Template> = decl.argv.iter().map(|a| parse(a, &mut problems)).collect();
    let mut env = BTreeMap::new();
    for (k, v) in &decl.env {
        if k.is_empty() || k.contains(['=', '\0']) {
            problems.push(format!("`env` key `{k}` is not a valid variable name"));
        }
        env.insert(k.clone(), parse(v, &mut problems));
    }
    if !problems.is_empty() {
        return Err(PipelineError::InvalidCommand { problems });
    }
    let spec = Arc::new(CommandSpec {
        argv,
        env,
        cwd: decl.cwd,
        timeout: decl.timeout,
    });
    let input_names: Vec<String> = inputs.into_iter().map(|(_, d)| d).collect();
    let output_names: Vec<String> = outputs.into_iter().map(|(_, d)| d).collect();
    Ok(NodeBuilder::from_dyn(
        COMMAND,
        Arc::new(CommandFn { spec }),
        input_names,
        output_names,
    ))
}

/// Splits `text` into pieces; `{params.x}` adds `params:x` to `inputs`
/// when missing.
fn parse_template(
    text: &str,
    inputs: &mut Vec<(String, String)>,
    outputs: &[(String, String)],
    problems: &mut Vec<String>,
) -> Template {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let piece = match inner.split_once('.') {
            Some(("inputs", key)) => match inputs.iter().position(|(k, _)| k == key) {
                Some(i) => Some(Piece::InputPath(i)),
                None => {
                    problems.push(format!(
                        "`{text}`: `{{inputs.{key}}}` names no input (declared: {})",
                        keys(inputs)
                    ));
                    Some(Piece::Text(String::new()))
                }
            },
            Some(("outputs", key)) => match outputs.iter().position(|(k, _)| k == key) {
                Some(i) => Some(Piece::OutputPath(i)),
                None => {
                    problems.push(format!(
                        "`{text}`: `{{outputs.{key}}}` names no output (declared: {})",
                        keys(outputs)
                    ));
                    Some(Piece::Text(String::new()))
                }
            },
            Some(("params", name)) if !name.is_empty() => {
                let dataset = format!("params:{name}");
                let i = match inputs.iter().position(|(_, d)| *d == dataset) {
                    Some(i) => i,
                    None => {
                        inputs.push((dataset.clone(), dataset));
                        inputs.len() - 1
                    }
                };
                Some(Piece::Value(i))
            }
            Some(("params", _)) => {
                problems.push(format!("`{text}`: `{{{inner}}}` is missing a name"));
                Some(Piece::Text(String::new()))
            }
            // Any other brace text is literal (shell-like `${HOME}`, JSON, ...).
            _ => None,
        };
        match piece {
            Some(piece) => {
                literal.push_str(&rest[..open]);
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            None => literal.push_str(&rest[..open + 1 + close + 1]),
        }
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Template {
        pieces,
        source: text.to_string(),
    }
}

fn keys(ports: &[(String, String)]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node function of a command node: it carries the spec; calling it
/// without a runner that stages files is an error.
struct CommandFn {
    spec: Arc<CommandSpec>,
}

impl NodeFn for CommandFn {
    fn signature(&self) -> Signature {
        Signature {
            inputs: Ports::Variadic(None),
            outputs: Ports::Variadic(None),
        }
    }

    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
        Err(format!(
            "node `{}` is a command node: it runs on its datasets' files, so only a weft runner can run it",
            call.node
        )
        .into())
    }

    fn command(&self) -> Option<&CommandSpec> {
        Some(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(argv: &[&str]) -> Result<(Vec<Vec<Piece>>, Vec<String>), String> {
        let builder = command(
            CommandDecl::new(argv.iter().copied()),
            [("a", "ds_a"), ("b", "ds_b")],
            [("out", "ds_out")],
        )
        .map_err(|e| e.to_string())?;
        let node = builder.name("n").build().map_err(|e| e.to_string())?;
        let spec = node.command().unwrap().clone();
        Ok((
            spec.argv.into_iter().map(|t| t.pieces).collect(),
            node.inputs().to_vec(),
        ))
    }

    #[test]
    fn placeholders_resolve_to_positions_and_params_join_the_inputs() {
        let (argv, inputs) = pieces(&[
            "tool",
            "--in={inputs.b}",
            "{outputs.out}",
            "{params.model.lr}",
            "${HOME}",
            "{x}",
        ])
        .unwrap();
        assert_eq!(
            argv,
            [
                vec![Piece::Text("tool".into())],
                vec![Piece::Text("--in=".into()), Piece::InputPath(1)],
                vec![Piece::OutputPath(0)],
                vec![Piece::Value(2)],
                vec![Piece::Text("${HOME}".into())],
                vec![Piece::Text("{x}".into())],
            ]
        );
        assert_eq!(inputs, ["ds_a", "ds_b", "params:model.lr"]);
    }

    #[test]
    fn every_problem_is_reported() {
        let err = pieces(&["tool", "{inputs.zz}", "{outputs.a}", "{params.}"]).unwrap_err();
        assert!(
            err.contains("`{inputs.zz}` names no input (declared: `a`, `b`)"),
            "{err}"
        );
        assert!(
            err.contains("`{outputs.a}` names no output (declared: `out`)"),
            "{err}"
        );
        assert!(err.contains("`{params.}` is missing a name"), "{err}");
        let empty = pieces(&[]).unwrap_err();
        assert!(empty.contains("needs a program"), "{empty}");
    }

    #[test]
    fn calling_a_command_node_like_a_function_is_an_error_not_a_panic() {
        let n = command(
            CommandDecl::new(["true"]),
            Vec::<(String, String)>::new(),
            Vec::<(String, String)>::new(),
        )
        .unwrap()
        .name("c")
        .build()
        .unwrap();
        let err = n.run(Vec::new(), &crate::CancelToken::new()).unwrap_err();
        assert!(err.to_string().contains("command node"), "{err}");
    }
}
