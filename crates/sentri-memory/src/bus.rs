//! An in-process [`RevocationBus`]: every `Sentri` sharing one
//! [`MemoryRevocationBus`] sees the others' revocations.

use async_trait::async_trait;
use sentri_core::store::{Revocation, RevocationBus, StoreResult};
use tokio::sync::broadcast;

/// Revocation fan-out within one process (tests, or several `Sentri` values
/// in one server). Across processes, use the Redis bus.
///
/// ```
/// use std::sync::Arc;
/// use sentri_core::store::RevocationBus;
/// use sentri_memory::{MemoryRevocationBus, MemoryStore};
///
/// let bus = Arc::new(MemoryRevocationBus::new());
/// let stores = Arc::new(MemoryStore::new()).stores().with_revocation_bus(bus);
/// # let _ = stores;
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRevocationBus {
    sender: broadcast::Sender<Revocation>,
}

impl MemoryRevocationBus {
    /// A bus buffering up to 1024 events per slow subscriber (a subscriber
    /// that falls further behind drops its whole cache).
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl Default for MemoryRevocationBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl RevocationBus for MemoryRevocationBus {
    async fn publish(&self, event: Revocation) -> StoreResult<()> {
        // No subscriber is not an error: nobody caches anything.
        let _ = self.sender.send(event);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.sender.subscribe()
    }
}
