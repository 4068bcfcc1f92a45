"""Evaluation of tutors: the held-out set and its grading (`tasks`), a cached async runner (`run`),
an LLM judge (`judge`), simulated students (`simulate`), paired statistics (`stats`) and the
report with plots (`report`). Entry point: `socratic eval --help`; see docs/evaluation.md."""
