//! Confusing URLs.
