//! Third-party handoffs across three sessions (DIGEST section 13).
