//! The stock `weft` binary: runs projects that use built-in functions only.
//! Projects with their own Rust functions call [`weft_cli::main_with`] from
//! their own `main` and get every command.

fn main() -> std::process::ExitCode {
    weft_cli::main_with(weft_session::ProjectCode::default())
}
