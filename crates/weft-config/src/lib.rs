//! weft-config (placeholder, being built).
