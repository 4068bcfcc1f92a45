"""tutor.errors: every error class of the project derives from `UserError`, and `socratic` turns
one into a single line `socratic: error: ...` with the class's exit code (2 for bad input or
settings, 1 for a failure while running), without each command listing the classes it expects."""

from __future__ import annotations

import argparse
import importlib

import pytest

from tutor import cli
from tutor.errors import UserError

CLASSES = {  # module: (class, exit code)
    "tutor.cli": [("CommandError", 2)],
    "tutor.io": [("DataError", 2)],
    "tutor.schema": [("SchemaError", 2)],
    "tutor.pairs": [("PairsError", 2)],
    "datagen.client": [("FatalError", 2), ("RequestFailed", 2)],
    "datagen.quality": [("Rejected", 2)],
    "trainer.config": [("TrainError", 2), ("ConfigError", 2)],
    "trainer.export": [("PushError", 1), ("UnverifiedExportError", 1), ("ExportProcessError", 1)],
    "trainer.gguf_tools": [("GGUFError", 2)],
    "server.chat_request": [("RequestError", 2)],
    "server.settings": [("SettingsError", 1)],
    "server.engine": [("EngineError", 1)],
    "server.upstream": [("UpstreamError", 2)],
    "tutor.vllm": [("VllmError", 1)],
    "evaluation.client": [("CallFailed", 2)],
}


@pytest.mark.parametrize("module", sorted(CLASSES))
def test_every_error_class_is_a_user_error(module: str) -> None:
    mod = importlib.import_module(module)
    for name, code in CLASSES[module]:
        cls = getattr(mod, name)
        assert issubclass(cls, UserError), name
        if name != "ExportProcessError":  # its code is the child's, given per instance
            assert cls.exit_code == code, name
    assert sum(len(v) for v in CLASSES.values()) == 19


def test_the_cli_prints_one_line_with_the_class_exit_code(monkeypatch, capsys) -> None:
    from server.engine import EngineError
    from tutor.io import DataError

    def fails_with(error: Exception):
        parser = argparse.ArgumentParser(prog="socratic")
        parser.set_defaults(func=lambda args: (_ for _ in ()).throw(error))
        return parser

    for error, code in [(DataError("a.jsonl:3: bad row"), 2), (EngineError("engine died"), 1)]:
        monkeypatch.setattr(cli, "build_parser", lambda error=error: fails_with(error))
        assert cli.main([]) == code
        assert capsys.readouterr().err == f"socratic: error: {error}\n"
    from trainer.export import ExportProcessError

    monkeypatch.setattr(cli, "build_parser", lambda: fails_with(ExportProcessError("x", 3)))
    assert cli.main([]) == 3
