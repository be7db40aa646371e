//! Runtime parameter assignments and Hydra-style sweeps: the grammar lives
//! in [`weft_config::overrides`] (shared with `weft serve`); this module
//! re-exports it for the CLI.

pub use weft_config::overrides::{DEFAULT_MAX_RUNS, OverrideError, Sweep};
