//! weft (placeholder, being built).
