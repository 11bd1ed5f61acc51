//! Failure windows and ban decisions.
