"""The one reader of the engine's build output (executor/engine.py), shared by the runtime-image
builder and the per-worker builder: whole lines out, the engine's error detected."""

from __future__ import annotations

from ava_platform.executor.engine import read_build_output


def read(chunks: list[dict[str, str]]) -> tuple[list[str], str | None]:
    lines: list[str] = []
    error = read_build_output(iter(chunks), lines.append)
    return lines, error


def test_pieces_become_whole_lines_without_blanks_or_escapes() -> None:
    chunks = [
        {"stream": "Step 1/2 : FROM x"},
        {"stream": "\n\n"},
        {"stream": " ---> \x1b[32mabc\x1b[0m\r\nStep 2/2"},
        {"aux": "ignored"},
        {"stream": " : RUN true  \n"},
        {"stream": "tail without newline"},
    ]
    lines, error = read(chunks)
    assert lines == [
        "Step 1/2 : FROM x",
        " ---> abc",
        "Step 2/2 : RUN true",
        "tail without newline",
    ]
    assert error is None


def test_an_error_chunk_ends_the_build_and_is_returned() -> None:
    chunks = [
        {"stream": "Step 1/1 : RUN false\n"},
        {"stream": "half a line"},
        {"error": "  The command '/bin/sh -c false' returned a non-zero code: 1\n"},
        {"stream": "never read\n"},
    ]
    lines, error = read(chunks)
    assert lines == ["Step 1/1 : RUN false", "half a line"]
    assert error == "The command '/bin/sh -c false' returned a non-zero code: 1"


def test_an_empty_error_is_still_a_failure() -> None:
    assert read([{"error": ""}]) == ([], "")
