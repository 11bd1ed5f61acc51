//! One pass per line over every jail of a source.
