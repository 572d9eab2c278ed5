//! Integration tests live in `tests/`; this crate holds their shared harness.
