#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oibus_actors::fuzzing::upgrade_zip::run(data));
