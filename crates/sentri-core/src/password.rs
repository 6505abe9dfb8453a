//! Password hashing and verification (F-05).
