//! weft-cli (placeholder, being built).
