//! Retrieval speed measurement.
