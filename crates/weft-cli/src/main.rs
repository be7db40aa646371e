//! The stock `weft` binary: runs projects that use built-in functions only.
//! Projects with their own Rust functions call [`weft_cli::main_with`] from
//! their own `main` and get every command.

/// mimalloc instead of the system allocator: under `weft serve` glibc's
/// malloc kept the pages freed by finished runs (RSS grew by about 0.5 KB
/// per run, and `malloc_trim(0)` on the live process gave it all back, so
/// it was memory held free by the allocator, not live data); mimalloc
/// returns freed pages to the system and RSS stays flat.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weft_cli::main_with(weft_session::ProjectCode::default())
}
