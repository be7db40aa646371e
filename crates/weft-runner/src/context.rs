pub use weft_core::RunContext;
