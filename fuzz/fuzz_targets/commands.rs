#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oibus_agent_fuzz::commands::run(data));
