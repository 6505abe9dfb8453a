//! The store conformance suite of `sentri-testkit`, run against
//! [`MemoryStore`].
//!
//! Each check gets a fresh store; the `shared_store` module runs the whole
//! suite again on one store that every check shares (clones of a
//! `MemoryStore` share its data), as a persistent backend would be shared.

use std::sync::OnceLock;

use sentri_memory::MemoryStore;

sentri_testkit::user_store_tests!(async { MemoryStore::new() });
sentri_testkit::session_store_tests!(async { MemoryStore::new() });
sentri_testkit::key_store_tests!(async { MemoryStore::new() });
sentri_testkit::idempotency_store_tests!(async { MemoryStore::new() });
sentri_testkit::throttle_store_tests!(async { MemoryStore::new() });
sentri_testkit::one_time_token_store_tests!(async { MemoryStore::new() });

/// A handle to the one store of the `shared_store` checks.
fn shared() -> MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(MemoryStore::new).clone()
}

mod shared_store {
    use super::shared;

    sentri_testkit::user_store_tests!(async { shared() });
    sentri_testkit::session_store_tests!(async { shared() });
    sentri_testkit::key_store_tests!(async { shared() });
    sentri_testkit::idempotency_store_tests!(async { shared() });
    sentri_testkit::throttle_store_tests!(async { shared() });
    sentri_testkit::one_time_token_store_tests!(async { shared() });
}
