//! sentri-memory
