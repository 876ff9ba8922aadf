#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oibus_agent_fuzz::upgrade_zip::run(data));
