//! Chart datasets (in progress).
