//! Support for the `mediagraph-tests` crate: the asset-store tests in `tests/tests/` (the cache
//! API and the uploader against Azurite) and the upload benchmarks in `tests/bin/`. All it holds
//! is starting Azurite on loopback (`azurite`). Tests that run the `mediagraph` binary live in
//! `host/tests/` instead, because Cargo builds a package's binary for its own integration tests
//! and hands them its path.

pub mod azurite;
