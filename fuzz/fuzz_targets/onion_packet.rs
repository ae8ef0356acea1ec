#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| triad_fuzzing::onion_packet(data));
