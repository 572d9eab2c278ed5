//! The frame reader, fed in chunks the input chooses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_protocol::fuzzing::frames(data);
});
