"""Publish generated conversations as a Hugging Face dataset with a dataset card.

    socratic data push --in data/gen/train.jsonl --repo me/socratic-dialogues
    socratic data push --in data/gen/train.jsonl --save-to runs/dataset

Every row is validated first (an invalid file is refused with `file:line: reason`). The card says
how the data was generated (model, template hash, counts from the manifest beside the file) and
carries a license note. A saved directory reads back with `socratic data validate DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen.store import read_manifest, side_file
from tutor.data import Report, iter_conversations
from tutor.io import DataError


def load_records(path: Path) -> tuple[list[dict[str, Any]], Report]:
    report = Report()
    records = [c.to_record() for c in iter_conversations([path], report, dedupe=True)]
    if report.invalid:
        where, reason = report.invalid[0]
        raise DataError(f"{len(report.invalid)} invalid row(s); first: {where}: {reason}")
    if not records:
        raise DataError(f"{path}: no conversations")
    # Arrow needs one meta struct type: every row gets every key (None where absent).
    keys = sorted({k for r in records for k in r.get("meta", {})})
    for r in records:
        meta = r.get("meta", {})
        r["meta"] = {k: meta.get(k) for k in keys}
    return records, report


def dataset_card(
    records: list[dict[str, Any]], manifest: dict[str, Any] | None, license_id: str
) -> str:
    """README.md of the dataset: YAML header, how it was made, counts, license note."""
    n = len(records)
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K"
    subjects: dict[str, int] = {}
    for r in records:
        s = r["meta"].get("subject") or "unknown"
        subjects[s] = subjects.get(s, 0) + 1
    lines = [
        "---",
        f"license: {license_id}",
        "language: [en]",
        "task_categories: [text-generation]",
        "tags: [socratic-tutoring, synthetic, conversational]",
        f"size_categories: [{size}]",
        "---",
        "",
        "# Synthetic Socratic tutoring dialogues",
        "",
        f"{n} multi-turn conversations in the `conversations` format (system, then user and "
        "assistant alternating), where the assistant is a Socratic tutor that guides with "
        "questions and confirms a correct answer at the end.",
        "",
        "## How it was generated",
        "",
    ]
    if manifest:
        sessions = manifest.get("sessions", [])
        lines += [
            f"- Generator model: `{manifest.get('model')}`; critic model: "
            f"`{manifest.get('critic_model')}` (self-critique against seven Socratic principles)",
            f"- Prompt template sha256: `{manifest.get('template_sha256')}`",
            f"- Requests: {sum(s['counts']['requests'] for s in sessions)}; conversations "
            f"returned: {sum(s['counts']['returned'] for s in sessions)}; accepted: "
            f"{sum(s['counts']['accepted'] for s in sessions)} "
            f"({sum(s['counts']['revised'] for s in sessions)} revised by the critic)",
            f"- Tokens: {manifest.get('tokens')}; estimated cost (USD): {manifest.get('cost_usd')}",
        ]
    else:
        lines.append("- No generation manifest was found beside the input file.")
    lines += [
        "- Every conversation passed schema validation, Socratic checks (tutor turns before the "
        "last ask a question, do not state the final answer, stay concise) and exact and "
        "near-duplicate filtering.",
        "",
        "## Subjects",
        "",
        *(f"- {s}: {c}" for s, c in sorted(subjects.items(), key=lambda x: -x[1])),
        "",
        "## License",
        "",
        f"Released under `{license_id}`. The text was produced by a language model: check the "
        "model provider's terms on using its outputs to train other models before you do so.",
        "",
    ]
    return "\n".join(lines)


def push_dataset(
    path: Path,
    *,
    repo: str | None = None,
    save_to: Path | None = None,
    private: bool = False,
    token: str | None = None,
    license_id: str = "apache-2.0",
) -> str:
    """Validate `path` and save it to `save_to` or push it to the Hub `repo`; returns where."""
    import datasets  # heavy: only for this command

    records, _ = load_records(Path(path))
    card = dataset_card(records, read_manifest(side_file(Path(path), "manifest.json")), license_id)
    ds = datasets.Dataset.from_list(records)
    if save_to is not None:
        ds.save_to_disk(str(save_to))
        (Path(save_to) / "README.md").write_text(card, encoding="utf-8")
        return str(save_to)
    if not repo:
        raise DataError("give --repo ID or --save-to DIR")
    from huggingface_hub import DatasetCard

    ds.push_to_hub(repo, private=private, token=token)
    # Keep the YAML that push_to_hub wrote (dataset_info, configs) and add ours to it.
    pushed = DatasetCard.load(repo, token=token, repo_type="dataset")
    ours = DatasetCard(card)
    for key, value in ours.data.to_dict().items():
        setattr(pushed.data, key, value)
    pushed.text = ours.text
    pushed.push_to_hub(repo, token=token, repo_type="dataset")
    return f"https://huggingface.co/datasets/{repo}"
