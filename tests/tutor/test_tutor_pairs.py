"""Preference pairs (`tutor.pairs`): the validator's one-line errors naming file:line and field,
`load_pairs`, `socratic data validate|convert` on pairs files (detected by keys, nothing dropped
silently, other shapes converted), and the bundled data/pairs: valid, counts and balance as its
README says, minimal (similar lengths), and no overlap with data/eval."""

import difflib
import json
import re
from collections import Counter

import pytest

from tutor.cli import main
from tutor.pairs import KINDS, PairsError, load_pairs, parse_pair
from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.schema import SchemaError

SYSTEM = {"role": "system", "content": TUTOR_SYSTEM_PROMPT}
GOOD = {
    "id": "t-1",
    "subject": "arithmetic",
    "kind": "wrong_claim",
    "prompt": [SYSTEM, {"role": "user", "content": "7 x 8 is 54, right?"}],
    "chosen": [{"role": "assistant", "content": "What do you get if you add 7 eight times?"}],
    "rejected": [{"role": "assistant", "content": "Yes, that's right! 7 x 8 is 54."}],
}


def _bad(**changes):
    return {**GOOD, **changes}


def _write(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8"
    )
    return path


def test_good_pair_is_normalised_and_keeps_extra_keys():
    pair = parse_pair({**GOOD, "prompt": [{**SYSTEM, "name": "x"}, GOOD["prompt"][1]]})
    assert pair["prompt"][0] == SYSTEM  # reduced to role/content
    assert pair["id"] == "t-1" and pair["kind"] == "wrong_claim"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_bad(rejected=GOOD["chosen"]), "rejected[0].content: equal to chosen[0].content"),
        (
            _bad(
                rejected=[
                    {"role": "assistant", "content": "  WHAT do you get if you add 7 eight times? "}
                ]
            ),
            "rejected[0].content: equal to chosen[0].content",
        ),
        (
            _bad(prompt=[*GOOD["prompt"], {"role": "assistant", "content": "Hm?"}]),
            "prompt: must end with an user message, ends with 'assistant'",
        ),
        (_bad(chosen=[]), "chosen: expected exactly one assistant message, got 0"),
        (
            _bad(chosen=[{"role": "assistant", "content": "  "}]),
            "chosen[0].content: empty after stripping whitespace",
        ),
        (
            _bad(rejected=[{"role": "user", "content": "Yes!"}]),
            "rejected[0].role: expected 'assistant', got 'user'",
        ),
        (_bad(rejected="Yes!"), "rejected: expected a list of one assistant message, got string"),
        (
            _bad(chosen=[GOOD["chosen"][0], GOOD["chosen"][0]]),
            "chosen: expected exactly one assistant message, got 2",
        ),
        (
            _bad(prompt=[{"role": "student", "content": "hi"}]),
            "prompt[0].role: unknown role 'student'",
        ),
        (
            _bad(prompt=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
            "prompt[1].role: expected 'assistant'",
        ),
        (_bad(kind="sycophancy"), "kind: unknown 'sycophancy'"),
        (_bad(subject=3), "subject: expected a non-empty string, got number"),
        ({"prompt": GOOD["prompt"], "chosen": GOOD["chosen"]}, "record: missing key 'rejected'"),
        ([1], "record: expected a JSON object, got array"),
    ],
)
def test_each_defect_is_one_line_naming_the_field(record, message):
    with pytest.raises(SchemaError) as e:
        parse_pair(record)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_load_pairs_names_file_and_line(tmp_path):
    p = _write(tmp_path / "p.jsonl", [GOOD, _bad(id="t-2", chosen=[])])
    with pytest.raises(PairsError, match=rf"^{p}:2: chosen: expected exactly one"):
        load_pairs(p)
    p = _write(tmp_path / "q.jsonl", [GOOD, "{oops"])
    with pytest.raises(PairsError, match=rf"^{p}:2: not valid JSON"):
        load_pairs(p)
    with pytest.raises(PairsError, match="no such file"):
        load_pairs(tmp_path / "missing.jsonl")
    assert load_pairs(_write(tmp_path / "ok.jsonl", [GOOD, _bad(id="t-2")]))[1]["id"] == "t-2"


def test_validate_detects_pairs_and_reports_every_bad_row(tmp_path, capsys):
    p = _write(tmp_path / "p.jsonl", [GOOD, _bad(rejected=GOOD["chosen"]), "{x", GOOD])
    assert main(["data", "validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert f"{p}:2: rejected[0].content: equal to chosen[0].content" in out
    assert f"{p}:3: not valid JSON" in out
    assert "rows: 4  valid: 2  invalid: 2  duplicates: 1" in out
    assert "wrong_claim 2" in out
    # a conversation row inside a pairs file is reported, not skipped
    conv = {
        "conversations": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    }
    p2 = _write(tmp_path / "p2.jsonl", [GOOD, conv])
    assert main(["data", "validate", "--json", str(p2)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "preference" and report["rows"] == 2
    assert report["errors"] == [{"where": f"{p2}:2", "error": "record: missing key 'prompt' "
                                 "(a preference row has prompt, chosen, rejected)"}]  # fmt: skip


def test_validate_reads_each_file_in_its_own_format(tmp_path, capsys):
    conv = {
        "conversations": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    }
    c = _write(tmp_path / "c.jsonl", [conv])
    p = _write(tmp_path / "p.jsonl", [GOOD])
    assert main(["data", "validate", str(p), str(c)]) == 0
    out = capsys.readouterr().out
    assert out.count("rows: 1  valid: 1  invalid: 0") == 2 and "wrong_claim 1" in out
    bad = _write(tmp_path / "bad.jsonl", [_bad(chosen=[])])
    assert main(["data", "validate", "--json", str(c), str(bad)]) == 1
    conv_report, pair_report = json.loads(capsys.readouterr().out)
    assert conv_report["valid"] == 1 and pair_report["format"] == "preference"
    assert pair_report["errors"][0]["where"] == f"{bad}:1"


def test_convert_reads_standard_and_implicit_prompt_rows(tmp_path, capsys):
    standard = {
        "prompt": "Is 9 prime?",
        "chosen": "What divides 9?",
        "rejected": "Yes, 9 is prime.",
    }
    convo = [{"role": "user", "content": "Is 9 prime?"}]
    implicit = {
        "chosen": [*convo, {"role": "assistant", "content": "Which numbers divide 9?"}],
        "rejected": [*convo, {"role": "assistant", "content": "Yes, it is prime."}],
    }
    mismatched = {
        "chosen": implicit["chosen"],
        "rejected": [{"role": "user", "content": "Other"}, implicit["rejected"][1]],
    }
    p = _write(tmp_path / "in.jsonl", [standard, implicit, mismatched, standard])
    out = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(p), "--out", str(out), "--dedupe"]) == 1
    captured = capsys.readouterr()
    assert (
        "read 4 rows: wrote 2 to" in captured.out
        and "1 invalid, 1 duplicates dropped" in captured.out
    )
    assert f"{p}:3: rejected: differs from chosen before the last message" in captured.err
    rows = load_pairs(out)
    assert [r["prompt"][0] for r in rows] == [SYSTEM, SYSTEM]  # the tutor prompt was inserted
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "What divides 9?"}]
    assert (
        rows[1]["prompt"][1:] == convo and rows[1]["rejected"][0]["content"] == "Yes, it is prime."
    )
    assert main(["data", "validate", str(out)]) == 0


def test_convert_of_conversations_is_unchanged_by_pairs_detection(tmp_path, capsys):
    conv = {
        "conversations": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    }
    p = _write(tmp_path / "c.jsonl", [conv])
    out = tmp_path / "o.jsonl"
    assert main(["data", "convert", str(p), "--out", str(out)]) == 0
    assert "conversations" in json.loads(out.read_text())
    # forcing the preference format on conversations names the missing field
    assert main(["data", "convert", str(p), "--out", str(out), "--format", "preference"]) == 1
    assert f"{p}:1: record: missing key 'prompt'" in capsys.readouterr().err


# --- the bundled pairs: data/pairs/pairs.jsonl -------------------------------------------------

SUBJECTS = {"arithmetic", "algebra", "geometry", "programming", "physics", "chemistry", "biology",
            "history", "geography", "economics", "statistics", "writing", "literature"}  # fmt: skip


@pytest.fixture(scope="module")
def bundled(repo_root):
    return load_pairs(repo_root / "data" / "pairs" / "pairs.jsonl")


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_bundled_pairs_counts_and_balance(bundled, repo_root):
    assert len(bundled) >= 300
    assert len({p["id"] for p in bundled}) == len(bundled)
    kinds = Counter(p["kind"] for p in bundled)
    share = {k: n / len(bundled) for k, n in kinds.items()}
    assert 0.40 <= share["wrong_claim"] <= 0.50, share
    assert 0.30 <= share["right_claim"] <= 0.40, share
    assert 0.15 <= share["answer_demand"] <= 0.25, share
    by_subject = Counter(p["subject"] for p in bundled)
    assert set(by_subject) == SUBJECTS
    assert max(by_subject.values()) - min(by_subject.values()) <= 2, by_subject
    assert all((s, k) in {(p["subject"], p["kind"]) for p in bundled}
               for s in SUBJECTS for k in KINDS)  # fmt: skip
    assert sum(len(p["prompt"]) > 2 for p in bundled) >= 30  # multi-turn prompts too
    # the README's table is the file's
    readme = (repo_root / "data" / "pairs" / "README.md").read_text()
    for s in SUBJECTS:
        row = " | ".join(
            str(sum(p["subject"] == s and p["kind"] == k for p in bundled)) for k in KINDS
        )
        assert f"| {s} | {row} | {by_subject[s]} |" in readme, s
    assert f"**{len(bundled)}**" in readme


def test_bundled_pairs_are_minimal_and_start_with_the_tutor_prompt(bundled):
    for p in bundled:
        assert p["prompt"][0] == SYSTEM, p["id"]
        chosen, rejected = p["chosen"][0]["content"], p["rejected"][0]["content"]
        ratio = len(chosen) / len(rejected)
        assert 0.5 <= ratio <= 2.0, (p["id"], ratio)  # one point of difference, not length


def test_bundled_pairs_do_not_overlap_the_eval_set(bundled, repo_root):
    """No pair's student turn repeats or nearly repeats a student turn of any data/eval file."""
    held_out = []
    for path in sorted((repo_root / "data" / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            held_out += [
                _tokens(m["content"]) for m in row.get("messages", []) if m["role"] == "user"
            ]
    assert len(held_out) > 200
    exact = {" ".join(t) for t in held_out}
    for p in bundled:
        for m in p["prompt"]:
            if m["role"] != "user":
                continue
            mine = _tokens(m["content"])
            assert " ".join(mine) not in exact, (p["id"], m["content"])
            if len(mine) < 4:
                continue
            for theirs in held_out:
                sm = difflib.SequenceMatcher(None, mine, theirs, autojunk=False)
                if sm.real_quick_ratio() >= 0.75 and sm.quick_ratio() >= 0.75:
                    assert sm.ratio() < 0.75, (p["id"], m["content"], " ".join(theirs))


def test_near_duplicate_check_catches_a_reworded_eval_item(repo_root):
    """The overlap test's measure flags an eval prompt with small edits (so it can fail)."""
    row = json.loads(
        (repo_root / "data" / "eval" / "single_turn.jsonl").read_text().splitlines()[0]
    )
    theirs = _tokens(row["messages"][0]["content"])
    mine = _tokens("Hey, " + row["messages"][0]["content"].replace("?", "") + " please")
    assert difflib.SequenceMatcher(None, mine, theirs, autojunk=False).ratio() >= 0.75


def test_bundled_pairs_agree_with_the_verdict_detector(bundled):
    """The project's verdict detector (tutor.verdict) reads the contrast the pairs are meant to
    carry: on wrong claims the rejected side accepts and the chosen side does not; on right claims
    the chosen side never doubts and the rejected side never accepts (rates, the detector errs)."""
    from tutor.verdict import accepts_student_claim

    seen: Counter = Counter()
    for p in bundled:
        if p["kind"] == "answer_demand":
            continue
        student = p["prompt"][-1]["content"]
        for side in ("chosen", "rejected"):
            verdict = accepts_student_claim(student, p[side][0]["content"]).accepts
            seen[p["kind"], side, verdict] += 1
    wrong = sum(p["kind"] == "wrong_claim" for p in bundled)
    assert seen["wrong_claim", "rejected", True] >= 0.9 * wrong, seen
    assert seen["wrong_claim", "chosen", True] <= 0.03 * wrong, seen
    assert seen["right_claim", "chosen", False] == 0 and seen["right_claim", "rejected", True] == 0
