//! The weft command line.
//!
//! The stock `weft` binary runs projects that use built-in functions. A
//! project with its own Rust functions is a crate whose `main` is one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut code = weft_session::ProjectCode::default();
//!     // register functions into a FunctionRegistry, put it in `code.functions`
//!     weft_cli::main_with(code)
//! }
//! ```
//!
//! Every command writes through the writers it is given, so the CLI runs
//! in-process too ([`run_with`]); settings come from flags, then the
//! [`Environment`] handed in, then `weft.toml` (see [`settings`]); exit
//! codes are in [`error`].

mod args;
mod commands;
pub mod error;
pub mod logging;
pub mod settings;
mod sweep;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use weft_session::ProjectCode;

pub use args::Cli;
pub use error::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError};
pub use settings::{Environment, Settings};
pub use sweep::{DEFAULT_MAX_RUNS, OverrideError, Sweep};

/// Where a command writes, and what it may do to the process.
pub(crate) struct Io<'a> {
    /// Results (tables, JSON).
    pub out: &'a mut dyn Write,
    /// Progress, status lines and errors.
    pub err: &'a mut dyn Write,
    /// Draw progress bars on the terminal's stderr.
    pub progress_bars: bool,
    /// Handle SIGINT/SIGTERM during `run` and `multirun`.
    pub signals: bool,
    /// Where answers to runs waiting for input are read from: the terminal
    /// when stdin and stderr are one, else nothing (`--input` must answer).
    pub prompt: Option<&'a mut dyn std::io::BufRead>,
}

/// Runs the CLI with the process's arguments, environment, stdout and
/// stderr, and the project's code. SIGINT and SIGTERM stop `run` and
/// `multirun` cleanly (exit 130).
pub fn main_with(code: ProjectCode) -> ExitCode {
    let environment = Environment::from_process();
    // Unlocked handles: each write takes the lock briefly, so log lines
    // written from run threads never wait for this thread.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let progress_bars = err.is_terminal();
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse(args.clone(), &mut out, &mut err) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let project = settings::project_dir(cli.project.as_deref(), &environment);
    let _guard = match logging::init(&cli, &project, &environment) {
        Ok(g) => g,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stdin = std::io::stdin();
    let mut terminal = (stdin.is_terminal() && progress_bars).then(|| stdin.lock());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        progress_bars,
        signals: true,
        prompt: terminal.as_mut().map(|t| t as &mut dyn std::io::BufRead),
    };
    ExitCode::from(execute(cli, &args, &environment, code, &mut io))
}

/// Runs the CLI in-process: `args` as on a command line (the first item is
/// the program name), settings from `environment` (never from the process),
/// output to `out` and `err`. Returns the exit code (see [`error`]).
///
/// Unlike [`main_with`] it installs no log subscriber and no signal
/// handlers: the caller owns the process.
pub fn run_with<I, T>(
    args: I,
    environment: &Environment,
    code: ProjectCode,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match parse(args.clone(), out, err) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let mut io = Io {
        out,
        err,
        progress_bars: false,
        signals: false,
        prompt: None,
    };
    execute(cli, &args, environment, code, &mut io)
}

/// Parses arguments; help and version go to `out` (exit 0), errors to `err` (exit 2).
fn parse<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> Result<Cli, u8>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| {
        let text = e.render().to_string();
        if e.use_stderr() {
            let _ = write!(err, "{text}");
            EXIT_USAGE
        } else {
            let _ = write!(out, "{text}");
            let _ = out.flush();
            EXIT_OK
        }
    })
}

fn execute(cli: Cli, args: &[OsString], environment: &Environment, code: ProjectCode, io: &mut Io<'_>) -> u8 {
    let command = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let result = commands::dispatch(cli, environment, command, code, io).and_then(|code| {
        io.out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader of stdout went away (`| head -1`): nothing left to say.
        Err(e) if error::is_broken_pipe(&e) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(io.err, "error: {e}");
            for cause in e.chain().skip(1) {
                let _ = writeln!(io.err, "  caused by: {cause}");
            }
            let _ = io.err.flush();
            error::exit_code(&e)
        }
    }
}
