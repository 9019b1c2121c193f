from __future__ import annotations

import json

from ava_platform.scheduler.output import MAX_LINE_BYTES, OutputCollector
from ava_platform.scheduler.redact import Redactor

NONCE = "0123456789abcdef0123456789abcdef"


def frame(payload: object) -> bytes:
    return f"AVA-RESULT-{NONCE} {json.dumps(payload)}\n".encode()


def lines(c: OutputCollector) -> list[tuple[str, str]]:
    return [(stream, line) for _, stream, line in c.drain()]


def test_frame_is_the_result_and_other_output_is_logs() -> None:
    c = OutputCollector(NONCE, budget_bytes=10_000)
    c.feed("stdout", b'hello\nAVA-RESULT-fffff {"ok": true, "result": 1}\n')
    c.feed("stderr", b"warn\n")
    c.feed("stdout", b"partial")
    c.feed("stdout", frame({"ok": True, "result": {"x": 1}}))
    c.close()
    assert c.frame == {"ok": True, "result": {"x": 1}}
    assert lines(c) == [
        ("stdout", "hello"),
        ("stdout", 'AVA-RESULT-fffff {"ok": true, "result": 1}'),
        ("stderr", "warn"),
        ("stdout", "partial"),
    ]


def test_frame_split_across_chunks_and_marker_across_a_long_line_cut() -> None:
    c = OutputCollector(NONCE, budget_bytes=10**9)
    data = b"y" * (MAX_LINE_BYTES + 10) + frame({"ok": True, "result": "z" * 200_000})
    for i in range(0, len(data), 4093):
        c.feed("stdout", data[i : i + 4093])
    c.close()
    assert c.frame == {"ok": True, "result": "z" * 200_000}
    assert "".join(line for _, line in lines(c)) == "y" * (MAX_LINE_BYTES + 10)


def test_oversized_frame_is_reported_not_buffered_forever() -> None:
    c = OutputCollector(NONCE, budget_bytes=10**9)
    c.feed("stdout", f"AVA-RESULT-{NONCE} ".encode())
    for _ in range(40):
        c.feed("stdout", b'"' + b"a" * 65_536)
    c.feed("stdout", b'"}\n')
    c.close()
    assert c.frame is None
    assert c.frame_error == "result_too_large"


def test_log_budget_truncates_with_one_marker() -> None:
    c = OutputCollector(NONCE, budget_bytes=100, cap_bytes=100)
    c.feed("stdout", b"0123456789\n" * 50)
    c.close()
    out = lines(c)
    assert out[-1][0] == "system" and "100-byte limit" in out[-1][1]
    assert sum(len(line) + 1 for s, line in out if s != "system") <= 100
    assert c.truncated


def test_secret_split_across_two_writes_is_redacted() -> None:
    c = OutputCollector(NONCE, budget_bytes=10_000, redactor=Redactor(["s3cr3t-value"]))
    c.feed("stdout", b"token=s3cr")
    c.feed("stdout", b"3t-value end\n")
    c.close()
    assert lines(c) == [("stdout", "token=*** end")]


def test_redactor_masks_raw_base64_and_url_encoded_forms() -> None:
    r = Redactor(["p@ss word/+"])
    assert r("a p@ss word/+ b") == "a *** b"
    assert r("b64 cEBzcyB3b3JkLys=") == "b64 ***"
    assert r("url p%40ss%20word%2F%2B") == "url ***"
    assert r("form p%40ss+word%2F%2B") == "form ***"
    assert (
        Redactor(["ab"])("ab stays: too short to mask safely")
        == "ab stays: too short to mask safely"
    )


def test_secret_straddling_an_overlong_line_cut_is_redacted() -> None:
    secret = "S3CRET-" + "k" * 40
    redactor = Redactor([secret])
    c = OutputCollector(NONCE, budget_bytes=10**9, redactor=redactor)
    data = b"a" * (MAX_LINE_BYTES - 10) + secret.encode() + b"b" * (MAX_LINE_BYTES * 2) + b"\n"
    for i in range(0, len(data), 1000):
        c.feed("stderr", data[i : i + 1000])
    c.close()
    text = "".join(line for _, line in lines(c))
    assert secret not in text
    assert "***" in text
    assert text.replace("***", secret) == data[:-1].decode()


def test_error_message_from_the_frame_is_redacted() -> None:
    from ava_platform.executor.base import RunResult
    from ava_platform.scheduler.runner import classify

    c = OutputCollector(NONCE, budget_bytes=1000)
    c.feed(
        "stdout",
        frame({"ok": False, "error": {"type": "handler_error", "message": "bad tok-12345"}}),
    )
    c.close()
    outcome = classify(RunResult(exit_code=1), c, 30, Redactor(["tok-12345"]))
    assert outcome.error is not None and outcome.error.message == "bad ***"


def test_the_result_is_known_once_the_frame_and_the_end_of_stderr_are_both_in() -> None:
    seen: list[str] = []
    c = OutputCollector(NONCE, budget_bytes=10_000, on_result=lambda: seen.append("known"))
    c.feed("stderr", b"warn\npartial")
    c.feed("stdout", frame({"ok": True, "result": 1}))
    assert seen == []  # stderr may still carry a line written before the frame
    c.feed("stderr", f"AVA-END-{NONCE}\n".encode())
    assert seen == ["known"]
    c.feed("stderr", f"AVA-END-{NONCE}\n".encode())  # a second one is only a log line
    c.close()
    assert seen == ["known"]
    assert lines(c) == [("stderr", "warn"), ("stderr", "partial"), ("stderr", f"AVA-END-{NONCE}")]


def test_the_end_of_stderr_before_the_frame_waits_for_the_frame() -> None:
    seen: list[str] = []
    c = OutputCollector(NONCE, budget_bytes=10_000, on_result=lambda: seen.append("known"))
    c.feed("stderr", f"AVA-END-{NONCE}\n".encode())
    c.feed("stderr", b"AVA-END-ffff\n")  # another nonce is user text
    assert seen == []
    c.feed("stdout", frame({"ok": False, "error": {"type": "E", "message": "m"}}))
    assert seen == ["known"]
    c.close()
    assert lines(c) == [("stderr", "AVA-END-ffff")]


def test_past_the_cap_lines_are_skipped_but_the_frame_and_end_marker_still_count() -> None:
    seen: list[bool] = []
    c = OutputCollector(NONCE, budget_bytes=20, on_result=lambda: seen.append(True))
    c.feed("stdout", b"0123456789\n" * 5)  # the third line passes the budget
    c.feed("stdout", b".\n" * 10_000 + b"tail " + frame({"ok": True, "result": 7})[:-9])
    c.feed("stderr", b"late\n" * 100 + f"AVA-END-{NONCE}\n".encode())
    assert not seen
    c.feed("stdout", frame({"ok": True, "result": 7})[-9:])
    assert seen == [True] and c.frame == {"ok": True, "result": 7}
    stored = lines(c)
    assert stored[0] == ("stdout", "0123456789") and len(stored) == 2
    assert stored[1][0] == "system" and "log truncated" in stored[1][1]
    assert c.truncated and c.stored_bytes == 11
