//! The per-line stage: what happens to a line between the source that read
//! it and the tracker that counts it. [`routes`] decides which jails' filters
//! read which lines of each source; [`scan`] runs those filters (built-in
//! ones in one pass, fail2ban filter files beside them, through one entry
//! point) and reads the line's date; [`stage`] batches what matched into
//! [`Failure`](crate::message::Failure)s for the tracker; [`readers`] opens
//! the sources, runs each on its own thread pushing into a stage, and swaps
//! routes on reload.
//!
//! Everything here runs on the readers' threads, inline, line by line: no
//! channel between reading and matching, one channel (to the tracker) after.

mod aliases;
mod readers;
mod relay;
mod routes;
mod scan;
mod stage;

pub use readers::{CursorStores, PipelineError, Prepared, Sources};
pub use stage::FLUSH_AT;
