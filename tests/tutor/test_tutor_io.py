"""Readers: streamed JSONL and JSON arrays (also across chunk boundaries), saved HF datasets,
atomic writes, and the one-line error for each kind of unreadable input."""

import json

import pytest

import tutor.io as tio
from tutor.io import DataError, atomic_open, read_rows, write_jsonl

REC = {
    "conversations": [
        {"role": "user", "content": "Hi ünïcode ✓"},
        {"role": "assistant", "content": "Why?"},
    ]
}


def _rows(path, **kw):
    return [(r.line, r.value, r.error) for r in read_rows(path, **kw)]


def test_jsonl_lines_blank_lines_and_bom(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (json.dumps(REC) + "\n\n" + json.dumps(REC) + "\n").encode())
    assert _rows(p) == [(1, REC, None), (3, REC, None)]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            b"{not json}\n",
            "not valid JSON: Expecting property name enclosed in double quotes at column 2",
        ),
        (b'{"conversations": [1, 2\n', "not valid JSON:"),
        (b'{"a": "\xff\xfe"}\n', "invalid UTF-8 at byte 7 of the line"),
        (
            b'{"conversations": [{"role": "us',
            "truncated last line (no newline at end of file and not valid JSON",
        ),
    ],
)
def test_jsonl_bad_lines_are_reported_with_their_line(tmp_path, content, error):
    p = tmp_path / "bad.jsonl"
    p.write_bytes((json.dumps(REC) + "\n").encode() + content)
    rows = list(read_rows(p))
    assert rows[0].value == REC
    assert rows[1].line == 2 and rows[1].error.startswith(error)
    assert rows[1].where == f"{p}:2"


def test_a_50_mb_line_is_reported_not_loaded(tmp_path):
    p = tmp_path / "huge.jsonl"
    with open(p, "wb") as f:
        f.write(b'{"conversations": "' + b"x" * (50 * 2**20) + b'"}\n')
        f.write((json.dumps(REC) + "\n").encode())
    rows = _rows(p)
    assert rows[0][0] == 1 and rows[0][2].startswith(
        "line is 52,428,822 bytes, over the 16,777,216-byte limit"
    )
    assert rows[1] == (2, REC, None)


@pytest.mark.parametrize("chunk", [7, 64, 2**20])
def test_json_array_streams_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(tio, "_CHUNK", chunk)
    items = [REC, {**REC, "meta": {"n": 12345}}, REC]
    p = tmp_path / "a.json"
    p.write_text(
        "[\n" + ",\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n",
        encoding="utf-8",
    )
    assert _rows(p) == [(2, items[0], None), (3, items[1], None), (4, items[2], None)]


def test_json_array_errors(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(f"[{json.dumps(REC)}, {json.dumps(REC)}")
    assert _rows(p)[-1][2] == "truncated JSON array (no closing ']')"
    p.write_text(f"[{json.dumps(REC)}, {{oops}}]")
    assert _rows(p)[-1][2].startswith("not valid JSON: Expecting property name")


def test_missing_file_and_plain_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(read_rows(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="not a saved Hugging Face dataset"):
        list(read_rows(tmp_path))


def test_saved_hf_dataset_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([REC, REC]).save_to_disk(tmp_path / "ds")
    rows = _rows(tmp_path / "ds")
    assert [r[0] for r in rows] == [1, 2] and rows[0][1]["conversations"] == REC["conversations"]


def test_atomic_write_leaves_old_file_on_crash(tmp_path):
    p = tmp_path / "out.jsonl"
    assert write_jsonl(p, [REC, REC]) == 2
    with pytest.raises(RuntimeError), atomic_open(p) as f:
        f.write("partial")
        raise RuntimeError("crash")
    assert len(p.read_text().splitlines()) == 2
    assert [x.name for x in tmp_path.iterdir()] == ["out.jsonl"]
