//! Each codec's decompressor on raw input (the first byte picks the codec), under a 1 MiB cap.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_protocol::fuzzing::decompress(data);
});
