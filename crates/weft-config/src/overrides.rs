//! Hydra 1.3's override grammar: runtime parameters and sweeps.
//!
//! `weft multirun --params` (and the service's sweep requests) take Hydra
//! overrides; `weft run --params` takes the same values, one per key, with
//! Kedro's free-text top-level values ([`crate::parse_runtime_params`]).
//!
//! # Overrides
//!
//! An override is `key=value`. The key is a dotted path of identifiers
//! (`[A-Za-z_$][A-Za-z0-9_$-]*`) or unsigned integers: `lr`, `model.depth`,
//! `list.0`; `a..b`, `.a`, `a.` and an empty key are errors. `+key=` and
//! `++key=` are accepted and mean the same as `key=` (runtime parameters
//! always add or replace); `~key` (deletion) and config groups
//! (`group/option`, `key@package`) have no meaning for runtime parameters
//! and are errors.
//!
//! Several overrides may share one `--params` string: a top-level comma
//! followed by `key=` starts the next one (`"lr=0.1,0.2,batch=32"` sweeps
//! `lr` and sets `batch`), since an unescaped `=` cannot appear in a value.
//!
//! # Values
//!
//! | written | value |
//! |---|---|
//! | `a,b,c` | a sweep over three values (each run gets one) |
//! | `10`, `-1`, `+3`, `1_000` | integer |
//! | `3.14`, `1e-3`, `1.`, `.5`, `3.1_4` | float (`inf`/`nan` are floats in Hydra but not representable in JSON parameters: an error) |
//! | `true`, `False`, `TRUE` (any case) | boolean |
//! | `null`, `NULL` (any case) | null |
//! | `abc`, `a b c`, `10abc`, `/path/to.csv`, `http://h:1`, `${a.b}` | string (surrounding blanks trimmed) |
//! | `'a,b'`, `"a b"` | string, quotes removed; `\'` (`\"`) is a quote, `\\` before a quote is one backslash |
//! | `\,` `\=` `\:` `\ ` `\(` `\)` `\[` `\]` `\{` `\}` `\\` | the escaped character inside an unquoted string |
//! | `[1,2]`, `[]`, `[a,[b]]` | list |
//! | `{a:1,b:{c:x}}`, `{}` | map (keys are unquoted text) |
//! | `range(stop)`, `range(start,stop[,step])` | sweep over `start, start+step, ...` below `stop` (above it for a negative step); floats are computed exactly in decimal, as Hydra does |
//! | `choice(a,b)` | sweep over the values |
//! | `sort(...)`, `sort(..., reverse=true)` | sorted list, or sorted sweep (`sort(3,1,2)`, `sort(range(...))`) |
//! | `shuffle(...)`, `shuffle(..., seed=N)` | shuffled list or sweep; with `seed` (a weft extension) the order is reproducible |
//! | `int(x)`, `float(x)`, `str(x)`, `bool(x)` | Hydra's casts, on values, lists, maps and sweeps |
//!
//! Function arguments may be named (`range(start=1,stop=10,step=2)`,
//! `sort(list=[3,1])`, `shuffle(sweep=choice(a,b))`). `interval`, `tag`,
//! `glob`, `extend_list` and `json_str` are not supported (they need an
//! optimizer, config groups or list merging): they are errors.
//!
//! Malformed overrides (`a=1,,2`, `a=`, `=1`, `a..b=1`, an unclosed bracket
//! or quote, a stray character) are errors naming the override, the column
//! and what was expected. Unlike Hydra, `a=` (empty value) is an error in a
//! sweep; in `weft run --params` it is null, as in Kedro.
//!
//! # Bounded expansion
//!
//! The number of runs is the product of the sweep sizes; it is computed
//! arithmetically (a `range` is never enumerated to be counted) with checked
//! arithmetic before anything is allocated, and [`Sweep::expand`] refuses
//! more than `max_runs` ([`DEFAULT_MAX_RUNS`] unless raised). Each run's
//! parameters are a tree with every override set (constant ones included),
//! the last override varying fastest, as Hydra's basic sweeper orders them.
//!
//! ```
//! use serde_json::json;
//! use weft_config::overrides::{DEFAULT_MAX_RUNS, Sweep};
//!
//! let sweep = Sweep::parse(&["lr=0.1,'0.2',batch=range(16,49,16)", "model.kind=[a,b]"]).unwrap();
//! assert_eq!(sweep.run_count().unwrap(), 6);
//! let runs: Vec<_> = sweep.expand(DEFAULT_MAX_RUNS).unwrap().collect();
//! assert_eq!(runs[0], json!({"lr": 0.1, "batch": 16, "model": {"kind": ["a", "b"]}}));
//! assert_eq!(runs[5], json!({"lr": "0.2", "batch": 48, "model": {"kind": ["a", "b"]}}));
//!
//! let huge = Sweep::parse(&["a=range(0,100000)", "b=range(0,100000)"]).unwrap();
//! let err = huge.expand(DEFAULT_MAX_RUNS).unwrap_err();
//! assert!(err.to_string().contains("10000000000 runs"), "{err}");
//! ```

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::ConfigError;

/// The default limit on the number of runs of one sweep.
pub const DEFAULT_MAX_RUNS: u64 = 10_000;

/// A malformed override or an over-large sweep.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The override does not follow the grammar.
    #[error("invalid override `{text}`: at column {column}: expected {expected}, found {found}")]
    Syntax {
        /// The override as written.
        text: String,
        /// 1-based character column of the problem in `text`.
        column: usize,
        /// What the grammar expected there.
        expected: String,
        /// What was found (`the end` at the end of the text).
        found: String,
    },
    /// The override parses but means nothing valid (bad function
    /// arguments, a value JSON cannot hold, a sweep where one value is
    /// required...).
    #[error("invalid override `{text}`: {message}")]
    Invalid {
        /// The override as written.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// The sweep has more runs than allowed.
    #[error(
        "the sweep has {count} runs, more than the limit of {limit}; raise the limit (`--max-runs N` on the command line) or narrow the sweep"
    )]
    TooManyRuns {
        /// The number of runs (`more than 2^128` when it overflows).
        count: String,
        /// The limit in force.
        limit: u64,
    },
    /// A sweep file cannot be read or is not a map of parameter -> values.
    #[error("sweep file {}: {message}", path.display())]
    SweepFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
        /// The underlying read or parse error, if any.
        #[source]
        source: Option<Box<ConfigError>>,
    },
}

// ---------------------------------------------------------------------------
// Parsed values
// ---------------------------------------------------------------------------

/// A number of a `range`: an integer, or a float kept as the exact decimal
/// of its shortest representation (what Python's `Decimal(str(x))` sees).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// An exact decimal `mant * 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dec {
    mant: i128,
    scale: u32,
}

impl Dec {
    fn of(n: Num) -> Option<Dec> {
        match n {
            Num::Int(i) => Some(Dec {
                mant: i as i128,
                scale: 0,
            }),
            Num::Float(f) => {
                // `{:e}` is the shortest round-trip representation.
                let s = format!("{f:e}");
                let (m, e) = s.split_once('e')?;
                let exp: i32 = e.parse().ok()?;
                let neg = m.starts_with('-');
                let m = m.trim_start_matches('-');
                let (int, frac) = m.split_once('.').unwrap_or((m, ""));
                let digits: i128 = format!("{int}{frac}").parse().ok()?;
                let mut scale = frac.len() as i32 - exp;
                let mut mant = digits;
                while scale < 0 {
                    mant = mant.checked_mul(10)?;
                    scale += 1;
                }
                if scale > 30 {
                    return None;
                }
                Some(Dec {
                    mant: if neg { -mant } else { mant },
                    scale: scale as u32,
                })
            }
        }
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        self.mant.checked_mul(10i128.checked_pow(scale - self.scale)?)
    }

    fn to_f64(mant: i128, scale: u32) -> f64 {
        format!("{mant}e-{scale}").parse().unwrap_or(f64::NAN)
    }
}

/// A `range(start, stop, step)` sweep, counted and indexed arithmetically.
#[derive(Clone, Debug, PartialEq)]
struct RangeSweep {
    start: Num,
    stop: Num,
    step: Num,
    /// Iterate from the last value to the first (set by `sort`).
    reversed: bool,
}

impl RangeSweep {
    fn is_int(&self) -> bool {
        matches!(
            (self.start, self.stop, self.step),
            (Num::Int(_), Num::Int(_), Num::Int(_))
        )
    }

    /// Exact decimal parameters on a common scale, if representable.
    fn decimal(&self) -> Option<(i128, i128, i128, u32)> {
        let (a, b, c) = (Dec::of(self.start)?, Dec::of(self.stop)?, Dec::of(self.step)?);
        let scale = a.scale.max(b.scale).max(c.scale);
        Some((a.rescale(scale)?, b.rescale(scale)?, c.rescale(scale)?, scale))
    }

    /// The number of values, without enumerating them.
    fn count(&self) -> Result<u128, String> {
        let (start, stop, step) = match self.decimal() {
            Some((a, b, c, _)) => (a, b, c),
            None => {
                // Not representable exactly: count in floating point.
                let (a, b, c) = (self.start.as_f64(), self.stop.as_f64(), self.step.as_f64());
                let n = ((b - a) / c).ceil();
                return if n.is_nan() || n <= 0.0 {
                    Ok(0)
                } else if n >= 2f64.powi(100) {
                    Err("range has too many values to count".into())
                } else {
                    Ok(n as u128)
                };
            }
        };
        if step == 0 {
            return Err("range step must not be 0".into());
        }
        let distance = if step > 0 {
            if start >= stop {
                return Ok(0);
            }
            stop.checked_sub(start)
        } else {
            if start <= stop {
                return Ok(0);
            }
            start.checked_sub(stop)
        }
        .ok_or("range bounds are too far apart")?;
        let step = step.unsigned_abs();
        let distance = distance.unsigned_abs();
        Ok(distance / step + u128::from(distance % step != 0))
    }

    /// The `i`-th value (`i < count`).
    fn get(&self, i: u128, count: u128) -> Value {
        let i = if self.reversed { count - 1 - i } else { i };
        if self.is_int()
            && let (Num::Int(a), Num::Int(c)) = (self.start, self.step)
        {
            return Value::from((a as i128 + i as i128 * c as i128) as i64);
        }
        let exact = self.decimal().and_then(|(a, _, c, scale)| {
            let m = i128::try_from(i).ok()?.checked_mul(c)?.checked_add(a)?;
            Some(Dec::to_f64(m, scale))
        });
        Value::from(exact.unwrap_or_else(|| self.start.as_f64() + i as f64 * self.step.as_f64()))
    }
}

/// How a sweep's values are shuffled.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shuffle {
    No,
    Seeded(u64),
    Random,
}

/// What a parsed element is.
#[derive(Clone, Debug, PartialEq)]
enum Elem {
    /// A plain value (primitive, list, map, or an evaluated function).
    Value(Value),
    /// `a,b,c` (simple) or `choice(...)`.
    Choice {
        values: Vec<Value>,
        simple: bool,
        shuffle: Shuffle,
    },
    /// `range(...)`.
    Range(RangeSweep, Shuffle),
}

impl Elem {
    fn kind(&self) -> &'static str {
        match self {
            Elem::Value(_) => "a value",
            Elem::Choice { .. } => "a choice sweep",
            Elem::Range(..) => "a range sweep",
        }
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Grammar flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `weft multirun`: Hydra's grammar.
    Sweep,
    /// `weft run --params`: one value per key, `=` allowed inside values
    /// (Kedro's first-separator rule), empty value is null.
    Params,
}

/// A failure while parsing, before the override text is attached.
enum Fail {
    At { pos: usize, expected: String },
    Invalid(String),
}

type PResult<T> = Result<T, Fail>;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    /// Nesting inside lists, maps and function calls.
    depth: usize,
}

const UNQUOTED_SPECIAL: &str = "/-\\+.$%*@?|";
/// Function names the grammar knows (the unsupported ones give a clear error).
const FUNCTIONS: &[&str] = &[
    "choice",
    "range",
    "sort",
    "shuffle",
    "int",
    "float",
    "str",
    "bool",
    "interval",
    "tag",
    "glob",
    "extend_list",
    "json_str",
];
const ESCAPABLE: &str = "\\()[]{}:=, \t";

fn is_id_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Parser {
    fn new(src: &str, mode: Mode) -> Self {
        Parser {
            chars: src.chars().collect(),
            pos: 0,
            mode,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, expected: impl Into<String>) -> PResult<T> {
        Err(Fail::At {
            pos: self.pos,
            expected: expected.into(),
        })
    }

    fn expect(&mut self, c: char, expected: &str) -> PResult<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(expected)
        }
    }

    /// An identifier at `i`, if any: its end.
    fn id_end(&self, i: usize) -> Option<usize> {
        if !self.peek_at(i).is_some_and(is_id_start) {
            return None;
        }
        let mut j = i + 1;
        while self.peek_at(j).is_some_and(is_id_char) {
            j += 1;
        }
        Some(j)
    }

    /// `true` when the text at `i` is `ID ws* (` (a function call).
    fn function_at(&self, i: usize) -> Option<(String, usize)> {
        let end = self.id_end(i)?;
        let mut j = end;
        while self.peek_at(j).is_some_and(is_ws) {
            j += 1;
        }
        let name: String = self.chars[i..end].iter().collect();
        // Kedro-style `--params` values are free text: only known
        // functions are calls there (`f(x)` stays a string).
        let known = self.mode == Mode::Sweep || FUNCTIONS.contains(&name.as_str());
        (known && self.peek_at(j) == Some('(')).then_some((name, j + 1))
    }

    /// `true` when the text at `i` is `ws* ID ws* =` (a named argument).
    fn arg_name_at(&self, i: usize) -> Option<(String, usize)> {
        let mut i = i;
        while self.peek_at(i).is_some_and(is_ws) {
            i += 1;
        }
        let end = self.id_end(i)?;
        let mut j = end;
        while self.peek_at(j).is_some_and(is_ws) {
            j += 1;
        }
        (self.peek_at(j) == Some('=')).then(|| (self.chars[i..end].iter().collect(), j + 1))
    }

    /// `element`, tracking the nesting depth.
    fn element(&mut self) -> PResult<Elem> {
        self.depth += 1;
        let e = self.element_inner();
        self.depth -= 1;
        e
    }

    fn element_inner(&mut self) -> PResult<Elem> {
        self.skip_ws();
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let items = self.sequence(']')?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.plain(item, "inside a list")?);
                }
                Ok(Elem::Value(Value::Array(out)))
            }
            Some('{') => self.dict().map(|m| Elem::Value(Value::Object(m))),
            _ => match self.function_at(self.pos) {
                Some((name, after)) => {
                    self.pos = after;
                    self.function(&name)
                }
                None => self.primitive().map(Elem::Value),
            },
        }
    }

    fn plain(&self, e: Elem, where_: &str) -> PResult<Value> {
        match e {
            Elem::Value(v) => Ok(v),
            other => Err(Fail::Invalid(format!("{} cannot be used {where_}", other.kind()))),
        }
    }

    /// Elements separated by commas up to `close` (the opener consumed).
    fn sequence(&mut self, close: char) -> PResult<Vec<Elem>> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.element()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return self.fail(format!("`,` or `{close}`")),
            }
        }
    }

    /// `dictContainer` (at `{`).
    fn dict(&mut self) -> PResult<Map<String, Value>> {
        self.pos += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.pos += 1;
            return Ok(map);
        }
        loop {
            let key = self.dict_key()?;
            self.expect(':', "`:` after the map key")?;
            let value = self.element()?;
            let value = self.plain(value, "inside a map")?;
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(map);
                }
                _ => return self.fail("`,` or `}`"),
            }
        }
    }

    /// `dictKey`: unquoted text, typed keys written canonically.
    fn dict_key(&mut self) -> PResult<String> {
        self.skip_ws();
        let start = self.pos;
        let mut text = String::new();
        let mut raw = String::new();
        loop {
            match self.peek() {
                Some('\\') if self.peek_at(self.pos + 1).is_some_and(|c| ESCAPABLE.contains(c)) => {
                    let c = self.chars[self.pos + 1];
                    text.push(c);
                    raw.push('\\');
                    raw.push(c);
                    self.pos += 2;
                }
                Some(c) if is_id_char(c) || is_ws(c) || UNQUOTED_SPECIAL.contains(c) => {
                    text.push(c);
                    raw.push(c);
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let trimmed = text.trim_matches(is_ws);
        if trimmed.is_empty() {
            self.pos = start;
            return self.fail("a map key (unquoted text)");
        }
        Ok(match type_primitive(raw.trim_matches(is_ws)) {
            Some(Ok(Value::Bool(b))) => b.to_string(),
            Some(Ok(Value::Null)) => "null".into(),
            Some(Ok(Value::Number(n))) => n.to_string(),
            _ => trimmed.to_string(),
        })
    }

    /// `primitive`: a quoted string, or a run of unquoted tokens.
    fn primitive(&mut self) -> PResult<Value> {
        self.skip_ws();
        let start = self.pos;
        if let Some(q @ ('\'' | '"')) = self.peek() {
            let s = self.quoted(q)?;
            self.skip_ws();
            return Ok(Value::String(s));
        }
        // (character, escaped) pairs, so escaped blanks survive trimming.
        let mut text: Vec<(char, bool)> = Vec::new();
        // A top-level `--params` value (depth 1: the value itself) is free
        // text up to the end of its item, as in Kedro.
        let free = self.mode == Mode::Params && self.depth == 1;
        loop {
            match self.peek() {
                Some('\\') if self.peek_at(self.pos + 1).is_some_and(|c| ESCAPABLE.contains(c)) => {
                    text.push((self.chars[self.pos + 1], true));
                    self.pos += 2;
                }
                Some(c) if free => {
                    text.push((c, false));
                    self.pos += 1;
                }
                Some('$') if self.peek_at(self.pos + 1) == Some('{') => {
                    // INTERPOLATION: `${` up to the first `}`.
                    match self.chars[self.pos + 2..].iter().position(|&c| c == '}') {
                        Some(len) if len > 0 => {
                            let end = self.pos + 2 + len + 1;
                            text.extend(self.chars[self.pos..end].iter().map(|&c| (c, false)));
                            self.pos = end;
                        }
                        _ => {
                            text.push(('$', false));
                            self.pos += 1;
                        }
                    }
                }
                Some('=') if self.mode == Mode::Params => {
                    text.push(('=', false));
                    self.pos += 1;
                }
                Some(c) if c == ':' || is_id_char(c) || is_ws(c) || UNQUOTED_SPECIAL.contains(c) => {
                    text.push((c, false));
                    self.pos += 1;
                }
                _ => break,
            }
        }
        // Trailing blanks belong to the separator, not the value.
        let mut end = self.pos;
        while text.last().is_some_and(|&(c, esc)| !esc && is_ws(c)) {
            text.pop();
            end -= 1;
        }
        if text.is_empty() {
            return self.fail("a value");
        }
        let raw: String = self.chars[start..end].iter().collect();
        if let Some(typed) = type_primitive(&raw) {
            return typed.map_err(Fail::Invalid);
        }
        Ok(Value::String(text.into_iter().map(|(c, _)| c).collect()))
    }

    /// A quoted string (at its opening quote), unescaped as Hydra does.
    fn quoted(&mut self, q: char) -> PResult<String> {
        let open = self.pos;
        let mut i = self.pos + 1;
        let mut out = String::new();
        loop {
            match self.peek_at(i) {
                None => {
                    self.pos = open;
                    return self.fail(format!("a closing {q} for the quote opened here"));
                }
                Some('\\') => {
                    let mut j = i;
                    while self.peek_at(j) == Some('\\') {
                        j += 1;
                    }
                    let n = j - i;
                    if self.peek_at(j) == Some(q) {
                        // Backslashes before a quote are escaped.
                        out.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            out.push(q);
                            i = j + 1;
                            continue;
                        }
                        self.pos = j + 1;
                        return Ok(out);
                    }
                    out.extend(std::iter::repeat_n('\\', n));
                    i = j;
                }
                Some(c) if c == q => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }

    /// A function call; `self.pos` is after `(`.
    fn function(&mut self, name: &str) -> PResult<Elem> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, Elem)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                if let Some((arg, after)) = self.arg_name_at(self.pos) {
                    self.pos = after;
                    let v = self.element()?;
                    if kwargs.iter().any(|(k, _)| *k == arg) {
                        return Err(Fail::Invalid(format!("{name}(): argument `{arg}` given twice")));
                    }
                    kwargs.push((arg, v));
                } else {
                    let at = self.pos;
                    let v = self.element()?;
                    if !kwargs.is_empty() {
                        self.pos = at;
                        return self.fail("a named argument (positional argument after a named one)");
                    }
                    args.push(v);
                }
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.fail(format!("`,` or `)` to close {name}(")),
                }
            }
        }
        call(name, args, kwargs).map_err(Fail::Invalid)
    }
}

/// Types a primitive's raw text (blanks trimmed) as Hydra's lexer does when
/// it is a single INT, FLOAT, BOOL or NULL token; `None` for strings.
fn type_primitive(raw: &str) -> Option<Result<Value, String>> {
    if raw.eq_ignore_ascii_case("true") {
        return Some(Ok(Value::Bool(true)));
    }
    if raw.eq_ignore_ascii_case("false") {
        return Some(Ok(Value::Bool(false)));
    }
    if raw.eq_ignore_ascii_case("null") {
        return Some(Ok(Value::Null));
    }
    let body = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if is_int_unsigned(body) {
        let digits: String = raw.chars().filter(|&c| c != '_' && c != '+').collect();
        return Some(match digits.parse::<i64>() {
            Ok(i) => Ok(Value::from(i)),
            Err(_) => match digits.parse::<u64>() {
                Ok(u) => Ok(Value::from(u)),
                Err(_) => Err(format!("the integer `{raw}` is out of the 64-bit range")),
            },
        });
    }
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("nan") || is_float(body) {
        let digits: String = raw.chars().filter(|&c| c != '_').collect();
        return Some(match digits.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::from(f)),
            _ => Err(format!(
                "`{raw}` is a float that JSON parameters cannot hold (infinite or NaN)"
            )),
        });
    }
    None
}

/// `'0' | [1-9] ('_'? DIGIT)*`.
fn is_int_unsigned(s: &str) -> bool {
    let b = s.as_bytes();
    match b {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => digits_with_underscores(rest, true),
        _ => false,
    }
}

/// `(('_')? DIGIT)*` (or `DIGIT (('_')? DIGIT)*` when `!leading_ok`).
fn digits_with_underscores(b: &[u8], leading_ok: bool) -> bool {
    let mut prev_digit = leading_ok;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => prev_digit = true,
            b'_' if prev_digit && b.get(i + 1).is_some_and(u8::is_ascii_digit) => prev_digit = false,
            _ => return false,
        }
        i += 1;
    }
    prev_digit
}

/// POINT_FLOAT | EXPONENT_FLOAT (unsigned).
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let point_float = |m: &str| match m.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() || is_int_unsigned(int))
                && (frac.is_empty() && !int.is_empty()
                    || !frac.is_empty() && digits_with_underscores(frac.as_bytes(), false))
        }
        None => false,
    };
    match exponent {
        None => point_float(mantissa),
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            (is_int_unsigned(mantissa) || point_float(mantissa))
                && !e.is_empty()
                && digits_with_underscores(e.as_bytes(), false)
        }
    }
}

// ---------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------

fn take_kw(kwargs: &mut Vec<(String, Elem)>, name: &str) -> Option<Elem> {
    let i = kwargs.iter().position(|(k, _)| k == name)?;
    Some(kwargs.remove(i).1)
}

fn no_more_kwargs(func: &str, kwargs: &[(String, Elem)]) -> Result<(), String> {
    match kwargs.first() {
        Some((k, _)) => Err(format!("{func}(): unknown argument `{k}`")),
        None => Ok(()),
    }
}

fn num_arg(func: &str, what: &str, e: Elem) -> Result<Num, String> {
    match e {
        Elem::Value(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Num::Int(i)),
            None => n
                .as_f64()
                .map(Num::Float)
                .ok_or_else(|| format!("{func}(): `{what}` is out of range")),
        },
        other => Err(format!(
            "{func}(): `{what}` must be an int or a float, got {}",
            describe(&other)
        )),
    }
}

fn bool_arg(func: &str, what: &str, e: Elem) -> Result<bool, String> {
    match e {
        Elem::Value(Value::Bool(b)) => Ok(b),
        other => Err(format!(
            "{func}(): `{what}` must be true or false, got {}",
            describe(&other)
        )),
    }
}

fn describe(e: &Elem) -> String {
    match e {
        Elem::Value(v) => format!("`{v}`"),
        other => other.kind().to_string(),
    }
}

fn simple_choice(func: &str, args: Vec<Elem>) -> Result<Elem, String> {
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Elem::Value(v) => values.push(v),
            other => {
                return Err(format!(
                    "{func}(): {} cannot be one of several values",
                    other.kind()
                ));
            }
        }
    }
    Ok(Elem::Choice {
        values,
        simple: true,
        shuffle: Shuffle::No,
    })
}

/// Evaluates a function call.
fn call(name: &str, args: Vec<Elem>, mut kwargs: Vec<(String, Elem)>) -> Result<Elem, String> {
    match name {
        "choice" => {
            no_more_kwargs(name, &kwargs)?;
            match args.len() {
                0 => Err("choice() needs at least one value".into()),
                1 => match args.into_iter().next().expect("one") {
                    Elem::Choice {
                        values,
                        simple: true,
                        shuffle,
                    } => Ok(Elem::Choice {
                        values,
                        simple: false,
                        shuffle,
                    }),
                    Elem::Value(v) => Ok(Elem::Choice {
                        values: vec![v],
                        simple: false,
                        shuffle: Shuffle::No,
                    }),
                    other => Err(format!("choice(): nesting {} is not supported", other.kind())),
                },
                _ => match simple_choice(name, args)? {
                    Elem::Choice { values, shuffle, .. } => Ok(Elem::Choice {
                        values,
                        simple: false,
                        shuffle,
                    }),
                    other => Ok(other),
                },
            }
        }
        "range" => {
            let mut it = args.into_iter();
            let mut next =
                |kw: &str, kwargs: &mut Vec<(String, Elem)>| it.next().or_else(|| take_kw(kwargs, kw));
            let first = next("start", &mut kwargs).ok_or("range() needs at least a stop value")?;
            let second = next("stop", &mut kwargs);
            let third = next("step", &mut kwargs);
            if it.next().is_some() {
                return Err("range() takes at most 3 arguments (start, stop, step)".into());
            }
            no_more_kwargs(name, &kwargs)?;
            let first = num_arg(name, "start", first)?;
            let (start, stop) = match second {
                Some(s) => (first, num_arg(name, "stop", s)?),
                None => (Num::Int(0), first),
            };
            let step = match third {
                Some(s) => num_arg(name, "step", s)?,
                None => Num::Int(1),
            };
            if step.as_f64() == 0.0 {
                return Err("range() step must not be 0".into());
            }
            Ok(Elem::Range(
                RangeSweep {
                    start,
                    stop,
                    step,
                    reversed: false,
                },
                Shuffle::No,
            ))
        }
        "sort" => {
            let reverse = match take_kw(&mut kwargs, "reverse") {
                Some(r) => bool_arg(name, "reverse", r)?,
                None => false,
            };
            let target = match (take_kw(&mut kwargs, "list"), take_kw(&mut kwargs, "sweep")) {
                (Some(l), None) if args.is_empty() => l,
                (None, Some(s)) if args.is_empty() => s,
                (None, None) if args.len() == 1 => args.into_iter().next().expect("one"),
                (None, None) if args.is_empty() => return Err("sort() needs values to sort".into()),
                (None, None) => simple_choice(name, args)?,
                _ => return Err("sort(): give the values positionally, or one of `list=`, `sweep=`".into()),
            };
            no_more_kwargs(name, &kwargs)?;
            sort(target, reverse)
        }
        "shuffle" => {
            let seed = match take_kw(&mut kwargs, "seed") {
                Some(Elem::Value(Value::Number(n))) if n.as_u64().is_some() => {
                    Shuffle::Seeded(n.as_u64().expect("u64"))
                }
                Some(other) => {
                    return Err(format!(
                        "shuffle(): `seed` must be a non-negative integer, got {}",
                        describe(&other)
                    ));
                }
                None => Shuffle::Random,
            };
            let target = match (take_kw(&mut kwargs, "list"), take_kw(&mut kwargs, "sweep")) {
                (Some(l), None) if args.is_empty() => l,
                (None, Some(s)) if args.is_empty() => s,
                (None, None) if args.len() == 1 => args.into_iter().next().expect("one"),
                (None, None) if args.is_empty() => return Err("shuffle() needs values to shuffle".into()),
                (None, None) => simple_choice(name, args)?,
                _ => {
                    return Err(
                        "shuffle(): give the values positionally, or one of `list=`, `sweep=`".into(),
                    );
                }
            };
            no_more_kwargs(name, &kwargs)?;
            Ok(match target {
                Elem::Value(Value::Array(mut items)) => {
                    shuffle_vec(&mut items, seed);
                    Elem::Value(Value::Array(items))
                }
                Elem::Value(v) => Elem::Value(Value::Array(vec![v])),
                Elem::Choice { values, simple, .. } => Elem::Choice {
                    values,
                    simple,
                    shuffle: seed,
                },
                Elem::Range(r, _) => Elem::Range(r, seed),
            })
        }
        "int" | "float" | "str" | "bool" => {
            let value = take_kw(&mut kwargs, "value");
            no_more_kwargs(name, &kwargs)?;
            let target = match (value, args.len()) {
                (Some(v), 0) => v,
                (Some(_), _) => {
                    return Err(format!(
                        "{name}(): cannot use both positional and named arguments"
                    ));
                }
                (None, 0) => return Err(format!("{name}() needs a value")),
                (None, 1) => args.into_iter().next().expect("one"),
                (None, _) => simple_choice(name, args)?,
            };
            cast(name, target)
        }
        "interval" | "tag" | "glob" | "extend_list" | "json_str" => Err(format!(
            "{name}() is not supported by weft (it needs an optimizer, config groups or list merging)"
        )),
        other => Err(format!(
            "unknown function `{other}` (known: choice, range, sort, shuffle, int, float, str, bool)"
        )),
    }
}

fn sort(target: Elem, reverse: bool) -> Result<Elem, String> {
    let sorted = |mut values: Vec<Value>| -> Result<Vec<Value>, String> {
        let mut err = None;
        values.sort_by(|a, b| {
            compare(a, b).unwrap_or_else(|| {
                err.get_or_insert_with(|| format!("sort(): cannot compare `{a}` with `{b}`"));
                Ordering::Equal
            })
        });
        if let Some(e) = err {
            return Err(e);
        }
        if reverse {
            values.reverse();
        }
        Ok(values)
    };
    Ok(match target {
        Elem::Value(Value::Array(items)) => Elem::Value(Value::Array(sorted(items)?)),
        Elem::Value(v) => Elem::Value(v),
        Elem::Choice {
            values,
            simple,
            shuffle,
        } => Elem::Choice {
            values: sorted(values)?,
            simple,
            shuffle,
        },
        Elem::Range(mut r, shuffle) => {
            let ascending = r.step.as_f64() > 0.0;
            r.reversed = ascending == reverse;
            Elem::Range(r, shuffle)
        }
    })
}

/// Python's ordering of two values (numbers and booleans together,
/// strings, lists lexicographically); `None` when not comparable.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let num = |v: &Value| match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                match compare(p, q)? {
                    Ordering::Equal => {}
                    o => return Some(o),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => {
            if let (Value::Number(x), Value::Number(y)) = (a, b)
                && let (Some(x), Some(y)) = (x.as_i64(), y.as_i64())
            {
                return Some(x.cmp(&y));
            }
            num(a)?.partial_cmp(&num(b)?)
        }
    }
}

fn cast(func: &str, target: Elem) -> Result<Elem, String> {
    Ok(match target {
        Elem::Value(v) => Elem::Value(cast_value(func, v)?),
        Elem::Choice {
            values,
            simple,
            shuffle,
        } => Elem::Choice {
            values: values
                .into_iter()
                .map(|v| cast_value(func, v))
                .collect::<Result<_, _>>()?,
            simple,
            shuffle,
        },
        Elem::Range(r, shuffle) => {
            let conv = |n: Num| -> Result<Num, String> {
                match func {
                    "int" => match n {
                        Num::Int(i) => Ok(Num::Int(i)),
                        Num::Float(f) => float_to_int(f).map(Num::Int),
                    },
                    "float" => Ok(Num::Float(n.as_f64())),
                    _ => Err(format!("a range can only be cast to int or float, not {func}")),
                }
            };
            Elem::Range(
                RangeSweep {
                    start: conv(r.start)?,
                    stop: conv(r.stop)?,
                    step: conv(r.step)?,
                    reversed: r.reversed,
                },
                shuffle,
            )
        }
    })
}

fn float_to_int(f: f64) -> Result<i64, String> {
    if f.is_finite() && f.trunc().abs() < 9.2e18 {
        Ok(f.trunc() as i64)
    } else {
        Err(format!("cannot convert {f} to an int"))
    }
}

/// Python's `int()`, `float()`, `str()`, `bool()` as Hydra applies them.
fn cast_value(func: &str, v: Value) -> Result<Value, String> {
    match v {
        Value::Array(items) => {
            return items
                .into_iter()
                .map(|v| cast_value(func, v))
                .collect::<Result<_, _>>()
                .map(Value::Array);
        }
        Value::Object(map) => {
            return map
                .into_iter()
                .map(|(k, v)| cast_value(func, v).map(|v| (k, v)))
                .collect::<Result<_, _>>()
                .map(Value::Object);
        }
        Value::Null => return Err(format!("{func}(null) is not defined")),
        _ => {}
    }
    let bad = |v: &Value| format!("cannot convert `{v}` with {func}()");
    Ok(match func {
        "int" => match &v {
            Value::Bool(b) => Value::from(i64::from(*b)),
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            Value::Number(n) => Value::from(float_to_int(n.as_f64().unwrap_or(f64::NAN))?),
            Value::String(s) => {
                let t = s.trim();
                let body = t.strip_prefix(['+', '-']).unwrap_or(t);
                let ok =
                    !body.is_empty() && (body.bytes().all(|c| c.is_ascii_digit()) || is_int_unsigned(body));
                let digits: String = t.chars().filter(|&c| c != '_' && c != '+').collect();
                match digits.parse::<i64>() {
                    Ok(i) if ok => Value::from(i),
                    _ => return Err(bad(&v)),
                }
            }
            _ => return Err(bad(&v)),
        },
        "float" => {
            let f = match &v {
                Value::Bool(b) => f64::from(u8::from(*b)),
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::String(s) => {
                    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
                    t.parse::<f64>().map_err(|_| bad(&v))?
                }
                _ => return Err(bad(&v)),
            };
            if !f.is_finite() {
                return Err(format!(
                    "{func}(`{v}`) is infinite or NaN, which JSON parameters cannot hold"
                ));
            }
            Value::from(f)
        }
        "str" => Value::String(match &v {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.is_f64() => python_float_repr(n.as_f64().unwrap_or(f64::NAN)),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err(bad(&v)),
        }),
        "bool" => Value::Bool(match &v {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(bad(&v)),
        }),
        _ => return Err(bad(&v)),
    })
}

/// Python's `repr(float)`: shortest digits, `.0` on integral values,
/// exponent form below 1e-4 and from 1e16.
fn python_float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let s = format!("{f:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

// ---------------------------------------------------------------------------
// Deterministic shuffling
// ---------------------------------------------------------------------------

/// SplitMix64: a small, well-distributed PRNG (no global state).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn shuffle_vec<T>(items: &mut [T], how: Shuffle) {
    let seed = match how {
        Shuffle::No => return,
        Shuffle::Seeded(s) => s,
        Shuffle::Random => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(items.len());
            h.finish()
        }
    };
    let mut rng = SplitMix64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

// ---------------------------------------------------------------------------
// Overrides and sweeps
// ---------------------------------------------------------------------------

/// The values one override gives its key.
#[derive(Clone, Debug, PartialEq)]
enum Dimension {
    Values(Vec<Value>, Shuffle),
    Range(RangeSweep, Shuffle),
}

impl Dimension {
    fn count(&self) -> Result<u128, String> {
        match self {
            Dimension::Values(v, _) => Ok(v.len() as u128),
            Dimension::Range(r, _) => r.count(),
        }
    }
}

/// One parsed `key=value` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    key: String,
    text: String,
    dim: Dimension,
    swept: bool,
}

impl Override {
    /// The dotted key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The override as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `true` when the override is a sweep (a choice or range), even of one
    /// value.
    pub fn is_sweep(&self) -> bool {
        self.swept
    }

    /// The number of values, computed arithmetically for ranges.
    pub fn len(&self) -> Result<u128, OverrideError> {
        self.dim.count().map_err(|message| OverrideError::Invalid {
            text: self.text.clone(),
            message,
        })
    }

    /// `true` when the override has no values (an empty range).
    pub fn is_empty(&self) -> bool {
        self.len().is_ok_and(|n| n == 0)
    }
}

/// Validates a dotted key as Hydra's key grammar does (`ID` or `DOT_PATH`
/// of identifiers with `$` and unsigned integers).
fn check_key(key: &str) -> Result<(), (usize, String)> {
    if key.is_empty() {
        return Err((0, "a parameter name before `=`".into()));
    }
    let mut col = 0;
    for seg in key.split('.') {
        let ok = if seg.starts_with(|c: char| c.is_ascii_digit()) {
            is_int_unsigned(seg) && !seg.contains('_')
        } else {
            seg.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c))
        };
        if !ok {
            let what = if seg.is_empty() {
                "a key segment (empty segment in a dotted key)".to_string()
            } else {
                format!("a key segment (letters, digits, `_`, `-`, `$`), not `{seg}`")
            };
            return Err((col, what));
        }
        col += seg.chars().count() + 1;
    }
    Ok(())
}

/// Where, in a sweep-mode `--params` string starting at char `i`, the key of
/// an override ends (at its `=`), if the text there is `key=`.
fn key_at(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    while chars.get(j).is_some_and(|&c| is_ws(c)) {
        j += 1;
    }
    while chars.get(j) == Some(&'+') {
        j += 1;
    }
    let start = j;
    while chars
        .get(j)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || "_-$.".contains(c))
    {
        j += 1;
    }
    (j > start && chars.get(j) == Some(&'=')).then_some(j)
}

fn syntax(text: &str, pos: usize, expected: String, chars: &[char]) -> OverrideError {
    let found = match chars.get(pos) {
        None => "the end".to_string(),
        Some(c) => format!("`{c}`"),
    };
    OverrideError::Syntax {
        text: text.to_string(),
        column: pos + 1,
        expected,
        found,
    }
}

/// Parses one sweep-mode `--params` string into overrides.
fn parse_sweep_spec(spec: &str) -> Result<Vec<Override>, OverrideError> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let mut p = Parser::new(spec, Mode::Sweep);
        p.pos = start;
        p.skip_ws();
        // Prefixes.
        match p.peek() {
            Some('~') => {
                return Err(OverrideError::Invalid {
                    text: spec.into(),
                    message: "deleting a key (`~key`) is not supported for runtime parameters".into(),
                });
            }
            Some('+') => {
                p.pos += 1;
                if p.peek() == Some('+') {
                    p.pos += 1;
                }
            }
            _ => {}
        }
        let key_start = p.pos;
        let Some(eq) = chars[key_start..]
            .iter()
            .position(|&c| c == '=')
            .map(|i| key_start + i)
        else {
            let end = chars.len();
            let key: String = chars[key_start..end].iter().collect();
            if key.trim().is_empty() {
                return Err(syntax(spec, end, "an override `key=value`".into(), &chars));
            }
            return Err(syntax(spec, end, format!("`=` after `{}`", key.trim()), &chars));
        };
        let raw_key: String = chars[key_start..eq].iter().collect();
        let key = raw_key.trim_end_matches(is_ws);
        if key.contains('/') || key.contains('@') {
            return Err(OverrideError::Invalid {
                text: spec.into(),
                message: format!(
                    "`{key}`: config groups (`group/option`, `key@package`) are not supported; use a dotted parameter key"
                ),
            });
        }
        if let Err((col, expected)) = check_key(key) {
            return Err(syntax(spec, key_start + col, expected, &chars));
        }
        p.pos = eq + 1;
        p.skip_ws();
        if p.peek().is_none() || (p.peek() == Some(',') && key_at(&chars, p.pos + 1).is_some()) {
            return Err(syntax(spec, p.pos, format!("a value for `{key}`"), &chars));
        }
        // value: element (',' element)*, until the end or `, key=`.
        let mut elems = Vec::new();
        let next_start = loop {
            let e = p.element().map_err(|f| fail_to_error(spec, f, &chars))?;
            elems.push(e);
            p.skip_ws();
            match p.peek() {
                None => break None,
                Some(',') => {
                    if key_at(&chars, p.pos + 1).is_some() {
                        break Some(p.pos + 1);
                    }
                    p.pos += 1;
                    p.skip_ws();
                    if matches!(p.peek(), None | Some(',')) {
                        return Err(syntax(spec, p.pos, "a value after `,`".into(), &chars));
                    }
                }
                Some(_) => {
                    return Err(syntax(
                        spec,
                        p.pos,
                        "`,` or the end of the override".into(),
                        &chars,
                    ));
                }
            }
        };
        let end = next_start.map_or(chars.len(), |n| n - 1);
        let text: String = chars[start..end].iter().collect::<String>().trim().to_string();
        let (dim, swept) = to_dimension(elems).map_err(|message| OverrideError::Invalid {
            text: text.clone(),
            message,
        })?;
        out.push(Override {
            key: key.to_string(),
            text,
            dim,
            swept,
        });
        match next_start {
            Some(n) => start = n,
            None => return Ok(out),
        }
    }
}

fn fail_to_error(text: &str, f: Fail, chars: &[char]) -> OverrideError {
    match f {
        Fail::At { pos, expected } => syntax(text, pos, expected, chars),
        Fail::Invalid(message) => OverrideError::Invalid {
            text: text.into(),
            message,
        },
    }
}

/// The values of one override: a simple sweep (several elements), a
/// choice/range sweep, or one value. The flag says whether it is a sweep.
fn to_dimension(elems: Vec<Elem>) -> Result<(Dimension, bool), String> {
    if elems.len() == 1 {
        return Ok(match elems.into_iter().next().expect("one") {
            Elem::Value(v) => (Dimension::Values(vec![v], Shuffle::No), false),
            Elem::Choice { values, shuffle, .. } => (Dimension::Values(values, shuffle), true),
            Elem::Range(r, shuffle) => (Dimension::Range(r, shuffle), true),
        });
    }
    let mut values = Vec::with_capacity(elems.len());
    for e in elems {
        match e {
            Elem::Value(v) => values.push(v),
            other => {
                return Err(format!(
                    "{} cannot be one of several values (`a,b,c`)",
                    other.kind()
                ));
            }
        }
    }
    Ok((Dimension::Values(values, Shuffle::No), true))
}

/// Parses one value in `weft run --params` mode (one value per key, `=`
/// allowed, empty is null). `text` is the whole item for messages; the
/// value starts at char `at`.
pub(crate) fn parse_params_value(text: &str, at: usize) -> Result<Value, OverrideError> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser::new(text, Mode::Params);
    p.pos = at;
    p.skip_ws();
    if p.peek().is_none() {
        return Ok(Value::Null);
    }
    let e = p.element().map_err(|f| fail_to_error(text, f, &chars))?;
    p.skip_ws();
    if p.peek().is_some() {
        return Err(syntax(text, p.pos, "the end of the value".into(), &chars));
    }
    match e {
        Elem::Value(v) => Ok(v),
        other => Err(OverrideError::Invalid {
            text: text.into(),
            message: format!(
                "{} has several values; sweeps are for `weft multirun`",
                other.kind()
            ),
        }),
    }
}

/// Splits a `weft run --params` string into items at top-level commas
/// (outside brackets, braces, parentheses, quotes, `${...}` and after `\`).
pub(crate) fn split_params_items(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                cur.push(c);
                if c == '\\' && chars.get(i + 1).is_some() {
                    cur.push(chars[i + 1]);
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\\' if chars.get(i + 1).is_some() => {
                    cur.push(c);
                    cur.push(chars[i + 1]);
                    i += 1;
                }
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '$' if chars.get(i + 1) == Some(&'{') => {
                    // `${...}` up to the first `}`.
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .map_or(chars.len(), |p| i + p + 1);
                    cur.extend(&chars[i..end]);
                    i = end;
                    continue;
                }
                '[' | '{' | '(' => {
                    depth += 1;
                    cur.push(c);
                }
                ']' | '}' | ')' => {
                    depth = depth.saturating_sub(1);
                    cur.push(c);
                }
                ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
        i += 1;
    }
    items.push(cur);
    items
}

/// A parsed sweep: overrides in order, each with one or more values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    overrides: Vec<Override>,
}

impl Sweep {
    /// Parses `weft multirun --params` strings (each one or more overrides).
    /// A key given twice keeps its first position and its last values.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Sweep, OverrideError> {
        let mut sweep = Sweep::default();
        for spec in specs {
            for o in parse_sweep_spec(spec.as_ref())? {
                sweep.push(o);
            }
        }
        Ok(sweep)
    }

    /// Reads a sweep file: a YAML map of dotted key -> a list of values
    /// (one per run), a string using a sweep function (`"range(1,10,2)"`,
    /// `"choice(a,b)"`, `"sort(...)"`, `"shuffle(...)"`), or one value.
    pub fn from_file(path: &Path) -> Result<Sweep, OverrideError> {
        let file_err = |message: String, source: Option<ConfigError>| OverrideError::SweepFile {
            path: path.to_path_buf(),
            message,
            source: source.map(Box::new),
        };
        let doc = crate::yaml::load_file(path).map_err(|e| file_err("cannot be loaded".into(), Some(e)))?;
        let Value::Object(map) = doc else {
            return Err(file_err(
                "a sweep file must be a map of parameter -> values".into(),
                None,
            ));
        };
        let mut sweep = Sweep::default();
        for (key, v) in map {
            if let Err((_, expected)) = check_key(&key) {
                return Err(file_err(format!("`{key}`: expected {expected}"), None));
            }
            let (dim, swept) = match v {
                Value::Array(items) if items.is_empty() => {
                    return Err(file_err(format!("`{key}` has no values"), None));
                }
                Value::Array(items) => (Dimension::Values(items, Shuffle::No), true),
                Value::String(s)
                    if ["range", "choice", "sort", "shuffle"].iter().any(|f| {
                        s.trim_start()
                            .strip_prefix(f)
                            .is_some_and(|r| r.trim_start().starts_with('('))
                    }) =>
                {
                    let text = format!("{key}={s}");
                    let mut parsed = parse_sweep_spec(&text)?;
                    if parsed.len() != 1 {
                        return Err(file_err(
                            format!("`{key}`: one value expression expected, got `{s}`"),
                            None,
                        ));
                    }
                    let o = parsed.remove(0);
                    (o.dim, o.swept)
                }
                other => (Dimension::Values(vec![other], Shuffle::No), false),
            };
            sweep.push(Override {
                text: format!("{key}: (from {})", path.display()),
                key,
                dim,
                swept,
            });
        }
        Ok(sweep)
    }

    /// Adds an override; one with a key already present replaces its values.
    pub fn push(&mut self, o: Override) {
        match self.overrides.iter_mut().find(|x| x.key == o.key) {
            Some(existing) => *existing = o,
            None => self.overrides.push(o),
        }
    }

    /// Adds every override of `other` (later ones win, see [`Sweep::push`]).
    pub fn extend(&mut self, other: Sweep) {
        for o in other.overrides {
            self.push(o);
        }
    }

    /// The overrides in order.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// The keys of the overrides that are sweeps with more than one value.
    pub fn varying_keys(&self) -> Vec<String> {
        self.overrides
            .iter()
            .filter(|o| o.len().is_ok_and(|n| n > 1))
            .map(|o| o.key.clone())
            .collect()
    }

    /// The number of runs (product of the sweep sizes), computed without
    /// enumerating anything; an error when a sweep is empty or the product
    /// overflows 128 bits.
    pub fn run_count(&self) -> Result<u128, OverrideError> {
        let mut total: u128 = 1;
        for o in &self.overrides {
            let n = o.len()?;
            if n == 0 {
                return Err(OverrideError::Invalid {
                    text: o.text.clone(),
                    message: "the sweep has no values".into(),
                });
            }
            total = total.checked_mul(n).ok_or_else(|| OverrideError::TooManyRuns {
                count: "more than 2^128".into(),
                limit: 0,
            })?;
        }
        Ok(total)
    }

    /// The runs' parameter trees, lazily: at most `max_runs` (else
    /// [`OverrideError::TooManyRuns`] before anything is allocated). Keys
    /// that nest under another override's plain value are an error.
    pub fn expand(&self, max_runs: u64) -> Result<Expansion, OverrideError> {
        let total = self.run_count().map_err(|e| match e {
            OverrideError::TooManyRuns { count, .. } => OverrideError::TooManyRuns {
                count,
                limit: max_runs,
            },
            other => other,
        })?;
        if total > u128::from(max_runs) {
            return Err(OverrideError::TooManyRuns {
                count: total.to_string(),
                limit: max_runs,
            });
        }
        self.check_nesting()?;
        let mut dims = Vec::with_capacity(self.overrides.len());
        for o in &self.overrides {
            let count = o.len()?;
            let dim = match &o.dim {
                Dimension::Values(v, how) => {
                    let mut v = v.clone();
                    shuffle_vec(&mut v, *how);
                    ExpDim::Values(v)
                }
                Dimension::Range(r, Shuffle::No) => ExpDim::Range(r.clone(), count),
                Dimension::Range(r, how) => {
                    let mut v: Vec<Value> = (0..count).map(|i| r.get(i, count)).collect();
                    shuffle_vec(&mut v, *how);
                    ExpDim::Values(v)
                }
            };
            let parts = o.key.split('.').map(str::to_string).collect();
            dims.push((parts, dim, count));
        }
        Ok(Expansion {
            dims,
            index: 0,
            total: total as u64,
        })
    }

    fn check_nesting(&self) -> Result<(), OverrideError> {
        for (i, a) in self.overrides.iter().enumerate() {
            for b in &self.overrides[i + 1..] {
                let nested = b.key.len() > a.key.len()
                    && b.key.starts_with(&a.key)
                    && b.key.as_bytes()[a.key.len()] == b'.';
                let plain = match &a.dim {
                    Dimension::Values(v, _) => v.iter().any(|v| !v.is_object()),
                    Dimension::Range(..) => true,
                };
                if nested && plain {
                    return Err(OverrideError::Invalid {
                        text: b.text.clone(),
                        message: format!(
                            "`{}` nests under `{}`, which `{}` sets to a plain value",
                            b.key, a.key, a.text
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum ExpDim {
    Values(Vec<Value>),
    Range(RangeSweep, u128),
}

impl ExpDim {
    fn get(&self, i: u128) -> Value {
        match self {
            ExpDim::Values(v) => v[i as usize].clone(),
            ExpDim::Range(r, count) => r.get(i, *count),
        }
    }
}

/// The lazy cartesian product of a [`Sweep`]: one runtime-parameters tree
/// per run, the last override varying fastest.
#[derive(Debug)]
pub struct Expansion {
    dims: Vec<(Vec<String>, ExpDim, u128)>,
    index: u64,
    total: u64,
}

impl Iterator for Expansion {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.index >= self.total {
            return None;
        }
        let mut rest = u128::from(self.index);
        let mut picks = vec![0u128; self.dims.len()];
        for (slot, (_, _, count)) in picks.iter_mut().zip(&self.dims).rev() {
            *slot = rest % count;
            rest /= count;
        }
        let mut tree = Value::Object(Map::new());
        for ((parts, dim, _), pick) in self.dims.iter().zip(picks) {
            set_path(&mut tree, parts, dim.get(pick));
        }
        self.index += 1;
        Some(tree)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.total - self.index) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Expansion {}

/// Sets a path in an object tree (checked by [`Sweep::check_nesting`]:
/// never nests under a plain value, so every step is an object).
fn set_path(tree: &mut Value, parts: &[String], value: Value) {
    let mut cur = tree;
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert(part.clone(), value);
            return;
        }
        cur = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
