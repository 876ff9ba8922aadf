//! End-to-end tests: the real binary against the simulator. One test binary (RocksDB is linked
//! once), one module per area, all sharing `kit`.

mod kit;

mod commands;
mod crash;
mod data_bench;
mod data_plane;
mod engine;
mod engine_settings;
mod faults;
mod fidelity;
mod fuzz_replay;
mod install_layout;
mod launcher;
mod logs;
mod messages;
mod metrics;
mod protocols_bench;
mod protocols_modbus;
mod protocols_mqtt;
mod registration;
mod sim;
mod soak;
mod status_page;
mod watchdog;
