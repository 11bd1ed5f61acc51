//! Follows a file like tail -F.
