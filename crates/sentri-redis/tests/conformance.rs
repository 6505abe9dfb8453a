//! The `sentri-testkit` conformance suites against the shared Redis at
//! 127.0.0.1:6379, each check under its own random key prefix (deleted when
//! the check ends).

mod common;

use common::test_store;

sentri_testkit::idempotency_store_tests!(test_store());
sentri_testkit::throttle_store_tests!(test_store());

/// The guard deletes what a store wrote under its prefix, and nothing else.
#[tokio::test]
async fn test_prefixes_are_cleaned_up() {
    use sentri_core::store::{IdempotencyStore, ThrottleStore};

    let prefix = common::unique_prefix();
    let other = common::unique_prefix();
    {
        let _guard = common::PrefixGuard(prefix.clone());
        let store = common::shared_store(&prefix).await;
        let neighbour = common::shared_store(&other).await;
        let ttl = std::time::Duration::from_secs(60);
        store.begin("k", &[1; 32], ttl).await.unwrap();
        store
            .record_failure("k", chrono::Utc::now(), ttl, 10)
            .await
            .unwrap();
        neighbour.begin("k", &[1; 32], ttl).await.unwrap();
        assert_eq!(common::count_prefix(&prefix).await, 2);
    }
    assert_eq!(common::count_prefix(&prefix).await, 0);
    assert_eq!(
        common::count_prefix(&other).await,
        1,
        "another prefix is left alone"
    );
    common::delete_prefix(&common::shared_url(), &other).await;
}
