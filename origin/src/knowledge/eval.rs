//! Retrieval quality measurement.
