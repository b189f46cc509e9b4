//! Form submission.
