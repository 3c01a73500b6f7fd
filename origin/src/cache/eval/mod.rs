//! `libriassist eval cache` (being written).
