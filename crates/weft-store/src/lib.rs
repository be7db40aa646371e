//! weft-store (placeholder, being built).
