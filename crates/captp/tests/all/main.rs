//! Integration tests for pola-captp.
