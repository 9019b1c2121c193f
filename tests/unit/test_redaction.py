"""Every shape a secret takes on its way out is masked: in log lines (however they are cut),
error messages and results."""

from __future__ import annotations

import base64
import json
import random
import urllib.parse

import pytest

from ava_platform.executor.base import RunResult
from ava_platform.scheduler.output import MAX_LINE_BYTES, OutputCollector
from ava_platform.scheduler.redact import MASK, Redactor, forms
from ava_platform.scheduler.runner import CUT_MARKER, MAX_MESSAGE_CHARS, classify

NONCE = "0123456789abcdef0123456789abcdef"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)
TOKEN = "tok_9Xq/+p@ss word&=?"  # every encoding differs from the raw value


def grams(text: str, n: int = 4) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def leaked(text: str, value: str) -> set[str]:
    """The 4-character pieces of any of value's forms that survive in text."""
    return {g for form in forms(value) for g in grams(form) if g in text and g != MASK + "*"}


def collect(redactor: Redactor, chunks: list[tuple[str, bytes]]) -> str:
    c = OutputCollector(NONCE, budget_bytes=10**9, redactor=redactor)
    for stream, data in chunks:
        c.feed(stream, data)
    c.close()
    return "\n".join(line for _, _, line in c.drain())


b64 = base64.b64encode(TOKEN.encode()).decode()
urlb64 = base64.urlsafe_b64encode(TOKEN.encode()).decode()


@pytest.mark.parametrize(
    "shape",
    [
        TOKEN,
        json.dumps(TOKEN)[1:-1],
        b64,
        b64.rstrip("="),
        urlb64,
        urlb64.rstrip("="),
        urllib.parse.quote(TOKEN, safe=""),
        urllib.parse.quote_plus(TOKEN, safe=""),
    ],
    ids=["raw", "json", "b64", "b64-unpadded", "urlsafe", "urlsafe-unpadded", "url", "url-plus"],
)
def test_each_form_of_a_value_is_masked(shape: str) -> None:
    assert Redactor([TOKEN])(f"<{shape}>") == f"<{MASK}>"


def test_a_value_of_exactly_the_minimum_length_is_masked() -> None:
    assert Redactor(["abcd"])("x abcd y") == f"x {MASK} y"
    assert Redactor(["abc"])("x abc y") == "x abc y"  # shorter would mask ordinary words


def test_a_pem_key_is_masked_line_by_line_json_escaped_and_collapsed() -> None:
    r = Redactor([PEM])
    printed = "\n".join(r(line) for line in PEM.splitlines())
    assert leaked(printed, PEM) == set()
    assert r(json.dumps({"PEM": PEM})) == json.dumps({"PEM": MASK})
    assert r(str({"PEM": PEM})) == str({"PEM": MASK})
    collapsed = " ".join(PEM.split())
    assert r(f"pem {collapsed}") == f"pem {MASK}"


def test_wrapped_base64_of_a_long_value_is_masked_line_by_line() -> None:
    encoded = base64.b64encode(PEM.encode()).decode()
    wrapped = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    r = Redactor([PEM])
    assert all(MASK in r(line) for line in wrapped if len(line) >= 4)


def test_a_multi_line_secret_printed_to_the_log_leaves_no_line() -> None:
    text = collect(
        Redactor([PEM]), [("stdout", PEM.encode()), ("stderr", json.dumps(PEM).encode())]
    )
    assert leaked(text, PEM) == set()


LONG = "k9/+p@ss word&=?" * 4  # forms longer than the result marker the stdout cut keeps


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("which", ["longest", "raw"])
@pytest.mark.parametrize("value", [TOKEN, LONG], ids=["short", "long"])
def test_no_cut_of_an_overlong_line_splits_a_form(stream: str, which: str, value: str) -> None:
    redactor = Redactor([value])
    form = max(forms(value), key=len) if which == "longest" else value
    start = MAX_LINE_BYTES - 20
    data = b"." * start + form.encode() + b"." * (MAX_LINE_BYTES + 50) + b"\n"
    # the write that overflows the line buffer ends at every position around the form
    for end in range(MAX_LINE_BYTES + 1, start + len(form) + 6):
        text = collect(
            redactor, [(stream, data[:start]), (stream, data[start:end]), (stream, data[end:])]
        )
        visible = text.replace(".", "")  # the padding holds no piece of a form
        assert leaked(visible, value) == set(), (end, visible[:200])
        assert text.replace("\n", "").replace(MASK, form).encode() == data[:-1]


def test_random_writes_never_split_a_form() -> None:
    rng = random.Random(7)
    redactor = Redactor([TOKEN])
    piece = b"." * 1000 + "".join(sorted(forms(TOKEN))).encode()
    data = piece * 200 + b"\n"
    for _ in range(5):
        chunks, i = [], 0
        while i < len(data):
            n = rng.randint(1, 9000)
            chunks.append(("stderr", data[i : i + n]))
            i += n
        assert leaked(collect(redactor, chunks).replace(".", ""), TOKEN) == set()


def frame_outcome(payload: object, redactor: Redactor) -> object:
    c = OutputCollector(NONCE, budget_bytes=10_000, redactor=redactor)
    c.feed("stdout", f"AVA-RESULT-{NONCE} {json.dumps(payload)}\n".encode())
    c.close()
    return classify(RunResult(exit_code=1), c, 30, redactor)


def test_an_error_message_is_redacted_before_it_is_cut() -> None:
    secret = "S" * 4 + "ecretValue-0123456789ab"[:20]  # 24 characters
    message = "x" * 1976 + secret + "y" * 200
    outcome = frame_outcome(
        {"ok": False, "error": {"type": "E", "message": message}}, Redactor([secret])
    )
    assert outcome.error is not None  # type: ignore[attr-defined]
    shown = outcome.error.message  # type: ignore[attr-defined]
    assert len(shown) <= MAX_MESSAGE_CHARS and shown.endswith(CUT_MARKER)
    assert leaked(shown.replace("x", ""), secret) == set()


def test_a_collapsed_pem_in_an_error_message_is_masked() -> None:
    message = "pem " + " ".join(PEM.split())
    outcome = frame_outcome(
        {"ok": False, "error": {"type": "ValueError", "message": message}}, Redactor([PEM])
    )
    assert outcome.error.message == f"pem {MASK}"  # type: ignore[attr-defined]


def test_a_result_is_redacted_in_values_keys_and_numbers() -> None:
    r = Redactor([TOKEN, "31415926"])
    result = {"env": {"K": TOKEN, TOKEN: 1, "n": 31415926}, "list": [f"b64={b64}"], "ok": True}
    outcome = frame_outcome({"ok": True, "result": result}, r)
    assert outcome.result == {  # type: ignore[attr-defined]
        "env": {"K": MASK, MASK: 1, "n": MASK},
        "list": [f"b64={MASK}"],
        "ok": True,
    }
