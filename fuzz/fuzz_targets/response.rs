//! Response decoding for every API and version in the version table (the first two bytes
//! pick them).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_protocol::fuzzing::response(data);
});
