//! weft-catalog (placeholder, being built).
