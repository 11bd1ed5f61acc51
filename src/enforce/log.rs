//! Dry-run backend.
