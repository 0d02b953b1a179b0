"""CappedLog: the head and tail of a flood of output, and a note of what was left out."""

from __future__ import annotations

import io

from orchestrator.door.processes import CappedLog


def feed(chunks: list[bytes], head: int, tail: int) -> bytes:
    out = io.BytesIO()
    log = CappedLog(out, head=head, tail=tail)
    for chunk in chunks:
        log.write(chunk)
    log.close()
    return out.getvalue()


def test_output_within_the_head_is_kept_whole() -> None:
    assert feed([b"abc", b"def"], head=10, tail=4) == b"abcdef"


def test_output_within_head_and_tail_is_kept_whole() -> None:
    assert feed([b"abcdefgh", b"ijkl"], head=8, tail=4) == b"abcdefghijkl"


def test_a_flood_keeps_the_first_and_last_bytes_and_counts_the_rest() -> None:
    data = bytes(range(256)) * 1000
    chunks = [data[i:i + 999] for i in range(0, len(data), 999)]
    kept = feed(chunks, head=1000, tail=500)
    omitted = len(data) - 1500
    assert kept == (data[:1000] + f"\n[orchestrate: {omitted} bytes of output omitted here]\n"
                    .encode() + data[-500:])


def test_a_single_huge_write_is_cut_too() -> None:
    kept = feed([b"x" * 100 + b"y" * 100], head=10, tail=10)
    assert kept == b"x" * 10 + b"\n[orchestrate: 180 bytes of output omitted here]\n" + b"y" * 10


def test_a_full_disk_stops_the_logging_not_the_caller() -> None:
    with open("/dev/full", "wb", buffering=0) as full:
        log = CappedLog(full, head=10, tail=10)
        log.write(b"x" * 100)
        log.close()
    assert log.broken
