//! The store conformance suite of sentri-testkit on mysql, one fresh
//! database per test, plus the backend's own checks.

mod common;

sentri_testkit::user_store_tests!(common::mysql_store());
sentri_testkit::session_store_tests!(common::mysql_store());
sentri_testkit::key_store_tests!(common::mysql_store());
sentri_testkit::idempotency_store_tests!(common::mysql_store());
sentri_testkit::throttle_store_tests!(common::mysql_store());
sentri_testkit::one_time_token_store_tests!(common::mysql_store());
