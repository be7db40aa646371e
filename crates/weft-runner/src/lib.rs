//! weft-runner (placeholder, being built).
