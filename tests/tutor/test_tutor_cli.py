"""The `socratic data validate|convert` commands end to end: exit codes, `file:line: reason`
output, counts that add up, the bundled sample, MathDial, and that no torch is imported."""

import json
import subprocess
import sys

from tutor.cli import main

GOOD = {
    "conversations": [
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Why do you ask?"},
    ]
}


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_validate_reports_each_bad_row_and_exits_1(tmp_path, capsys):
    p = _write(
        tmp_path / "d.jsonl",
        [json.dumps(GOOD), "{broken", json.dumps({"messages": []}), json.dumps(GOOD)],
    )
    assert main(["data", "validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert f"{p}:2: not valid JSON" in out
    assert f"{p}:3: messages: empty list of messages" in out
    assert "rows: 4  valid: 2  invalid: 2  duplicates: 1" in out


def test_validate_json_output_and_exit_0(tmp_path, capsys):
    p = _write(tmp_path / "d.jsonl", [json.dumps(GOOD)])
    assert main(["data", "validate", "--json", str(p)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 1 and report["valid"] == 1 and report["errors"] == []
    assert report["exchanges_histogram"] == {"1": 1}


def test_missing_file_is_one_line_error(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"socratic: error: {tmp_path / 'nope.jsonl'}: no such file"


def test_bundled_sample_is_valid(sample_file, capsys):
    assert main(["data", "validate", str(sample_file)]) == 0
    out = capsys.readouterr().out
    assert "invalid: 0" in out


def test_convert_counts_add_up_and_dedupe(tmp_path, capsys):
    sharegpt = {
        "conversations": [
            {"from": "human", "value": "Why?"},
            {"from": "gpt", "value": "why DO you ask?"},
        ]
    }
    p = _write(
        tmp_path / "in.jsonl", [json.dumps(GOOD), json.dumps(sharegpt), "[1]", json.dumps({"x": 1})]
    )
    out_file = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(p), "--out", str(out_file), "--dedupe"]) == 1
    captured = capsys.readouterr()
    assert (
        "read 4 rows: wrote 1 to" in captured.out
        and "2 invalid, 1 duplicates dropped" in captured.out
    )
    assert f"{p}:3: record: expected a JSON object" in captured.err
    written = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert written[0]["conversations"][0]["role"] == "system"  # the tutor prompt was inserted


def test_convert_custom_system_prompt(tmp_path):
    p = _write(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    out_file = tmp_path / "out.jsonl"
    assert (
        main(["data", "convert", str(p), "--out", str(out_file), "--system-prompt", "Be kind."])
        == 0
    )
    assert json.loads(out_file.read_text())["conversations"][0] == {
        "role": "system",
        "content": "Be kind.",
    }


def test_convert_keeps_every_mathdial_dialogue_by_default(mathdial_file, tmp_path, capsys):
    out_file = tmp_path / "md.jsonl"
    assert main(["data", "convert", str(mathdial_file), "--out", str(out_file)]) == 0
    assert "read 599 rows: wrote 599" in capsys.readouterr().out
    assert len(out_file.read_text().splitlines()) == 599
    assert main(["data", "validate", str(out_file)]) == 0
    assert "exchanges per conversation" in capsys.readouterr().out
    # A limit is still available as an option: the longer dialogues are then reported, not kept.
    capped = tmp_path / "capped.jsonl"
    assert main(["data", "convert", str(mathdial_file), "--max-exchanges", "8",
                 "--out", str(capped)]) == 1  # fmt: skip
    captured = capsys.readouterr()
    assert "read 599 rows: wrote 483" in captured.out
    assert ":2: conversations: 9 exchanges, outside 1..8" in captured.err
    assert main(["data", "validate", str(out_file), "--max-exchanges", "8"]) == 1


def test_data_commands_do_not_import_torch(sample_file):
    code = (
        "import sys; from tutor.cli import main; "
        f"rc = main(['data', 'validate', {str(sample_file)!r}]); "
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'httpx', 'fastapi') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout


def test_help_of_every_command_works():
    res = subprocess.run(
        [sys.executable, "-m", "tutor.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and "data" in res.stdout


def test_convert_errors_name_the_index_in_the_input_row(tmp_path, capsys):
    """The tutor prompt is inserted after validation, so `conversations[1]` is the row's own [1]."""
    bad = {
        "conversations": [{"role": "user", "content": "u"}, {"role": "assistant", "content": " "}]
    }
    p = _write(tmp_path / "in.jsonl", [json.dumps(bad)])
    assert main(["data", "convert", str(p), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert (
        f"{p}:1: conversations[1].content: empty after stripping whitespace"
        in capsys.readouterr().err
    )


def test_output_piped_into_a_reader_that_leaves_early(tmp_path):
    """`socratic data validate big.jsonl | head -1`: exit 141 quietly, no traceback."""
    bad = json.dumps({"conversations": [{"role": "user", "content": "x"}]})
    p = _write(tmp_path / "big.jsonl", [bad] * 20000)
    cmd = [sys.executable, "-m", "tutor.cli", "data", "validate", str(p)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in proc.stderr.read()
