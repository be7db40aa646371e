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

mod args;
mod commands;
mod logging;
mod sweep;

use std::process::ExitCode;

use clap::Parser;
use weft_session::ProjectCode;

pub use args::Cli;
pub use sweep::{DEFAULT_MAX_RUNS, OverrideError, Sweep};

/// Runs the CLI with the process's arguments and the project's code.
pub fn main_with(code: ProjectCode) -> ExitCode {
    let cli = Cli::parse();
    let _guard = match logging::init(&cli) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match commands::dispatch(cli, code) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
