//! The spaceflights project's CLI: weft's commands with the project's
//! functions registered (`cargo run -p spaceflights -- --project examples/spaceflights run`).

use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let functions = match spaceflights::registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    weft::main_with(weft::ProjectCode {
        functions: Arc::new(functions),
        ..Default::default()
    })
}
