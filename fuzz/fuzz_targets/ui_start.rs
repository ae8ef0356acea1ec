#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| triad_fuzzing::ui_start(data));
