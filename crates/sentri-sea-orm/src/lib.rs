//! sentri-sea-orm: SeaORM stores for sentri (work in progress).
