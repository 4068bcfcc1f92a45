"""The engine client's pure parts: the incremental SSE parser (events split across reads, CRLF,
multi-line data, comments, an unterminated last event) and `with_model`, the in-place rewrite of a
chunk's `model` (a byte splice that must parse to the same object a full re-encode gives, and the
fallback when the field is missing, repeated or nested)."""

from __future__ import annotations

import json

import pytest

from server.upstream import SSEParser, with_model


def feed_all(pieces: list[bytes]) -> tuple[list[bytes], bytes | None]:
    parser = SSEParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events, parser.end()


def test_sse_events_split_anywhere_across_reads():
    stream = (
        b'data: {"a": 1}\n\n: keep-alive comment\n\nevent: x\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    )
    whole, _ = feed_all([stream])
    assert whole == [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == (whole, None)
    assert feed_all([bytes([b]) for b in stream]) == (whole, None)


def test_sse_crlf_multiline_data_and_unterminated_last_event():
    events, last = feed_all([b"data:first\r\ndata: second\r\n\r\ndata: tail"])
    assert events == [b"first\nsecond"]
    assert last == b"tail"
    assert feed_all([b"data: x\n\n\n\n"]) == ([b"x"], None)  # blank lines without data: no event


CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "choices": [{"index": 0, "delta": {"content": 'say "model": "x" ünïcode'}}],
}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(CHUNK).encode(),  # ASCII-escaped, spaces after separators
        json.dumps(CHUNK, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps({**CHUNK, "model": 'a "quoted" name'}).encode(),
        json.dumps({k: v for k, v in CHUNK.items() if k != "model"}).encode(),  # no model
        json.dumps({**CHUNK, "meta": {"model": "inner"}}).encode(),  # nested model field
        json.dumps({**CHUNK, "model": 7}).encode(),  # not a string
    ],
)
def test_with_model_gives_the_same_object_as_a_full_reencode(raw):
    chunk = json.loads(raw)
    expected = {**chunk, "model": "socratic-tutor"}
    assert json.loads(with_model(raw, json.loads(raw), "socratic-tutor")) == expected


def test_with_model_splices_bytes_when_unambiguous():
    raw = b'{"id":"c1","model":"engine-x","choices":[{"delta":{"content":"\\u00e9 model"}}]}'
    out = with_model(raw, json.loads(raw), "tutör")
    assert out == raw.replace(b'"engine-x"', '"tutör"'.encode())  # untouched elsewhere
