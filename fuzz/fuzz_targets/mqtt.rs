#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oibus_actors::fuzzing::mqtt::run(data));
