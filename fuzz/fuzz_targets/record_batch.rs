//! Record-batch decoding end to end: segment splitting, the CRC path, decompression of every
//! codec (the attributes pick it) and record/header/control-record iteration.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_protocol::fuzzing::record_batches(data);
});
