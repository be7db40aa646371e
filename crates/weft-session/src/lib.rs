//! weft-session (placeholder, being built).
