//! The store conformance suite of sentri-core on postgres, one fresh database
//! per test, plus the backend's own checks.

mod common;

sentri_core::user_store_tests!(common::pg_store());
sentri_core::session_store_tests!(common::pg_store());
sentri_core::key_store_tests!(common::pg_store());
sentri_core::idempotency_store_tests!(common::pg_store());
sentri_core::throttle_store_tests!(common::pg_store());
sentri_core::one_time_token_store_tests!(common::pg_store());
