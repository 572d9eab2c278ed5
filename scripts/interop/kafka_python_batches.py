#!/usr/bin/env python3
"""Record-batch interop between sluice and kafka-python, an implementation nobody here wrote.

generate DIR   Builds batches with kafka-python's DefaultRecordBatchBuilder (one file per codec,
               plus transactional and control batches) and writes DIR/NAME.bin with the exact
               records that went in as DIR/NAME.json. Also writes DIR/sample.log, the segment the
               README's `sluice dump` example reads. sluice's tests decode these files.
verify DIR     Decodes every DIR/NAME.bin that sluice wrote with kafka-python and checks the
               result against DIR/NAME.json (what sluice put in). Fails unless every codec is there.

JSON layout of NAME.json (bytes as lowercase hex, null stays null):
  {"batches": [{"base_offset", "producer_id", "producer_epoch", "base_sequence",
                "transactional", "control", "compression",
                "records": [{"offset", "timestamp", "key", "value",
                             "headers": [[KEY_HEX, VALUE_HEX_OR_NULL], ...],
                             "control": null | "commit" | "abort"}]}]}
"""

import json
import struct
import sys
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {v: k for k, v in CODECS.items()}
CONTROL_BIT = 0x20
ATTRIBUTES_OFFSET = 21
CRC_OFFSET = 17


def h(b):
    return None if b is None else b.hex()


def unh(s):
    return None if s is None else bytes.fromhex(s)


def sample_records(n, seed):
    """Records with every shape that matters: null and empty keys and values, duplicate header
    keys in order, null and empty header values, binary data, and compressible bulk so that
    kafka-python really compresses (it falls back to none when compression does not pay)."""
    out = []
    for i in range(n):
        key = [None, b"", f"user-{(i * 7 + seed) % 13}".encode()][i % 3]
        value = [None, b"", json.dumps({"page": f"/item/{i % 17}", "user": i % 13,
                                        "ts": 1_700_000_000_000 + i}).encode() * 3,
                 bytes([(i * 31 + j + seed) % 256 for j in range(40)])][i % 4]
        headers = []
        if i % 2 == 0:
            headers = [("trace", f"t-{i}".encode()), ("trace", b"second"), ("empty", b""),
                       ("null", None)]
        out.append({"offset": i, "timestamp": 1_700_000_000_000 + i * 3 - (i % 5),
                    "key": key, "value": value, "headers": headers})
    return out


def build(records, codec, transactional=False, producer=(-1, -1, -1), base_offset=0):
    pid, epoch, seq = producer
    b = DefaultRecordBatchBuilder(magic=2, compression_type=CODECS[codec],
                                  is_transactional=transactional, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 30)
    for r in records:
        meta = b.append(r["offset"], timestamp=r["timestamp"], key=r["key"], value=r["value"],
                        headers=r["headers"])
        assert meta is not None
    buf = bytearray(b.build())
    struct.pack_into(">q", buf, 0, base_offset)
    attrs = struct.unpack_from(">h", buf, ATTRIBUTES_OFFSET)[0]
    if (attrs & 0x07) != CODECS[codec]:
        raise SystemExit(f"kafka-python did not compress the {codec} fixture; make it compressible")
    return buf


def make_control(buf):
    """kafka-python never builds control batches (brokers do), so set the bit and re-sign."""
    attrs = struct.unpack_from(">h", buf, ATTRIBUTES_OFFSET)[0] | CONTROL_BIT
    struct.pack_into(">h", buf, ATTRIBUTES_OFFSET, attrs)
    struct.pack_into(">I", buf, CRC_OFFSET, calc_crc32c(memoryview(buf)[ATTRIBUTES_OFFSET:]))
    return buf


def recompress(buf, codec, compress):
    """Replaces the records section of an uncompressed batch with `compress(section)` and
    re-signs it: how we get raw snappy (what librdkafka writes) and linked-block lz4 frames
    (python-lz4's default), which kafka-python's own builder never produces."""
    header, section = buf[:61], bytes(buf[61:])
    out = bytearray(header) + compress(section)
    struct.pack_into(">i", out, 8, len(out) - 12)
    attrs = struct.unpack_from(">h", out, ATTRIBUTES_OFFSET)[0] & ~0x07 | CODECS[codec]
    struct.pack_into(">h", out, ATTRIBUTES_OFFSET, attrs)
    struct.pack_into(">I", out, CRC_OFFSET, calc_crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return out


def describe(buf):
    """Decodes one batch with kafka-python into the JSON layout."""
    batch = DefaultRecordBatch(bytes(buf))
    if not batch.validate_crc():
        raise SystemExit("kafka-python: CRC check failed")
    records = []
    for r in batch:
        control = None
        if batch.is_control_batch:
            control = "commit" if r.commit else "abort"
        records.append({"offset": r.offset, "timestamp": r.timestamp, "key": h(r.key),
                        "value": h(r.value),
                        "headers": [[k.encode().hex(), h(v)] for k, v in r.headers],
                        "control": control})
    return {"base_offset": batch.base_offset, "producer_id": batch.producer_id,
            "producer_epoch": batch.producer_epoch, "base_sequence": batch.base_sequence,
            "transactional": batch.is_transactional, "control": batch.is_control_batch,
            "compression": CODEC_NAMES[batch.compression_type], "records": records}


def split_batches(data):
    pos, out = 0, []
    while pos < len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        out.append(data[pos:pos + 12 + length])
        pos += 12 + length
    return out


def expected_json(records, base_offset, codec, transactional, control, producer):
    return {"base_offset": base_offset, "producer_id": producer[0], "producer_epoch": producer[1],
            "base_sequence": producer[2], "transactional": transactional, "control": control,
            "compression": codec,
            "records": [{"offset": base_offset + r["offset"], "timestamp": r["timestamp"],
                         "key": h(r["key"]), "value": h(r["value"]),
                         "headers": [[k.encode().hex(), h(v)] for k, v in r["headers"]],
                         "control": None} for r in records]}


def generate(out):
    out.mkdir(parents=True, exist_ok=True)
    segment, segment_json, next_offset = bytearray(), [], 0
    fixtures = [(codec, codec, False, False) for codec in CODECS]
    fixtures += [("transactional-lz4", "lz4", True, False), ("control-commit", "none", True, True),
                 ("control-abort", "none", True, True), ("snappy-raw", "snappy", False, False),
                 ("lz4-linked-blocks", "lz4", False, False)]
    import lz4.frame
    import snappy
    foreign = {"snappy-raw": snappy.compress,
               "lz4-linked-blocks": lambda d: lz4.frame.compress(d, block_linked=True,
                                                                 block_size=lz4.frame.BLOCKSIZE_MAX64KB,
                                                                 content_checksum=True)}
    for seed, (name, codec, transactional, control) in enumerate(fixtures):
        producer = (4000 + seed, 3, 17 * seed) if transactional else (-1, -1, -1)
        if control:
            kind = 1 if name.endswith("commit") else 0
            records = [{"offset": 0, "timestamp": 1_700_000_100_000, "key": struct.pack(">hh", 0, kind),
                        "value": struct.pack(">hi", 0, 5), "headers": []}]
        else:
            records = sample_records(40, seed)
        if name in foreign:
            records = sample_records(1200, seed)  # more than one 64 KiB lz4 block
            buf = recompress(build(records, "none", base_offset=next_offset), codec, foreign[name])
        else:
            buf = build(records, codec, transactional, producer, base_offset=next_offset)
        if control:
            buf = make_control(buf)
        expected = expected_json(records, next_offset, codec, transactional, control, producer)
        if control:
            expected["records"][0]["control"] = "commit" if kind == 1 else "abort"
        # What went in must be what kafka-python itself reads back.
        assert describe(buf) == expected, f"kafka-python disagrees with itself on {name}"
        (out / f"{name}.bin").write_bytes(buf)
        (out / f"{name}.json").write_text(json.dumps({"batches": [expected]}, indent=1) + "\n")
        if name not in foreign:  # keep the README's sample small
            segment += buf
            segment_json.append(expected)
        next_offset += len(records)
    (out / "sample.log").write_bytes(segment)
    (out / "sample.json").write_text(json.dumps({"batches": segment_json}, indent=1) + "\n")
    print(f"wrote {len(fixtures)} fixtures and sample.log to {out}")


def verify(directory):
    files = sorted(directory.glob("*.bin"))
    seen_codecs, failures, passed = set(), [], 0
    for path in files:
        expected = json.loads(path.with_suffix(".json").read_text())["batches"]
        try:
            got = [describe(b) for b in split_batches(path.read_bytes())]
        except Exception as e:  # noqa: BLE001 - any kafka-python failure is a test failure
            failures.append(f"{path.name}: kafka-python could not decode it: {e!r}")
            continue
        if got != expected:
            failures.append(f"{path.name}: kafka-python read\n{json.dumps(got)[:2000]}\n"
                            f"sluice wrote\n{json.dumps(expected)[:2000]}")
        else:
            passed += 1
        seen_codecs.update(b["compression"] for b in got)
    missing = set(CODECS) - seen_codecs
    if missing:
        failures.append(f"no batch for codecs {sorted(missing)} in {directory}")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"kafka-python interop, {len(files)} files checked")
    print(f"interop: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "verify"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "generate":
        generate(Path(sys.argv[2]))
    else:
        sys.exit(verify(Path(sys.argv[2])))
