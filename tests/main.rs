//! End-to-end tests: the real binary against the simulator. One test binary (RocksDB is linked
//! once), one kit.

mod kit;

mod engine;
mod launcher;
