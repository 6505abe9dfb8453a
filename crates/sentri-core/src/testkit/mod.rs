//! The store conformance suite (feature `testkit`, F-34).
