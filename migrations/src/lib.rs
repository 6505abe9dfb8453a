//! sentri-migration: the schema of sentri (work in progress).
