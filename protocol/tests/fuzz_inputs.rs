//! The fuzz harnesses (`sluice_protocol::fuzzing`, one per cargo-fuzz target) run here on the
//! interop fixtures, their damaged copies and pseudo-random input, so a plain `cargo test`
//! exercises the same code paths the fuzzer does and keeps them from rotting.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use sluice_protocol::fuzzing;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-python");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(out.len() >= 10, "fixtures missing");
    out.sort();
    out
}

#[test]
fn record_batch_harness_on_fixtures_and_their_damage() {
    let mut rng = Rng(7);
    for fixture in fixtures() {
        fuzzing::record_batches(&fixture);
        for _ in 0..200 {
            let mut damaged = fixture.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % damaged.len();
                damaged[at] = rng.next() as u8;
            }
            let cut = (rng.next() as usize) % (damaged.len() + 1);
            fuzzing::record_batches(&damaged[..cut]);
            fuzzing::record_batches(&damaged);
        }
    }
}

#[test]
fn decompress_harness_on_compressed_sections_and_noise() {
    let mut rng = Rng(11);
    for fixture in fixtures() {
        for codec in 0..4u8 {
            let mut input = vec![codec];
            input.extend_from_slice(&fixture[61..]);
            fuzzing::decompress(&input);
        }
    }
    for _ in 0..5_000 {
        fuzzing::decompress(&rng.bytes(300));
    }
}

#[test]
fn frame_and_response_harnesses_on_noise() {
    let mut rng = Rng(13);
    for _ in 0..20_000 {
        let data = rng.bytes(200);
        fuzzing::frames(&data);
        fuzzing::response(&data);
    }
}
