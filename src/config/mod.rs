//! Configuration.
pub mod port;
