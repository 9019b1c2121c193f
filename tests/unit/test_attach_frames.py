"""The engine's multiplexed attach stream taken apart as bytes come (executor/attach.py)."""

from __future__ import annotations

from ava_platform.executor.attach import SLICE_BYTES, FrameReader


def header(stream: int, size: int) -> bytes:
    return bytes([stream, 0, 0, 0]) + size.to_bytes(4, "big")


def read_all(reader: FrameReader) -> list[tuple[str, bytes]]:
    out = []
    while (piece := reader.next()) is not None:
        out.append(piece)
    return out


def test_frames_split_anywhere_come_out_whole_per_stream_in_slices() -> None:
    big = b"x" * (SLICE_BYTES * 2 + 5)
    wire = header(1, 3) + b"out" + header(2, 4) + b"err\n" + header(1, len(big)) + big
    reader = FrameReader()
    got: list[tuple[str, bytes]] = []
    for i in range(0, len(wire), 7):  # a header and a payload cut at every place
        reader.push(wire[i : i + 7])
        got += read_all(reader)
    assert all(len(data) <= SLICE_BYTES for _, data in got)
    joined: dict[str, bytes] = {}
    for stream, data in got:
        joined[stream] = joined.get(stream, b"") + data
    assert joined == {"stdout": b"out" + big, "stderr": b"err\n"}
    assert [s for s, _ in got][:2] == ["stdout", "stderr"]


def test_an_empty_frame_and_a_header_alone_yield_nothing_yet() -> None:
    reader = FrameReader()
    reader.push(header(1, 0) + header(2, 2)[:5])
    assert read_all(reader) == []
    reader.push(header(2, 2)[5:] + b"ok")
    assert read_all(reader) == [("stderr", b"ok")]
