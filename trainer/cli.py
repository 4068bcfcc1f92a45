"""`socratic train` and `socratic export`: thin argparse wrappers over trainer.train and
trainer.export. Only argparse-level code is imported here; torch loads inside the commands.

    socratic train --config configs/tiny-cpu.yaml train.epochs=2
    socratic export --run runs/tiny --out runs/tiny/export --push-to-hub you/tutor-tiny
    socratic export --run runs/tiny export.dtype=bfloat16 --allow-unverified
    socratic export --run runs/smollm2 --gguf f16,q4_k_m
    accelerate launch --num_processes 2 -m trainer.cli train --config configs/qwen2.5-7b-qlora.yaml
"""

from __future__ import annotations

import argparse

TRAIN_EPILOG = """overrides: section.key=value pairs (YAML values), applied after the preset and after
environment variables SOCRATIC_<SECTION>__<KEY> (e.g. SOCRATIC_TRAIN__EPOCHS=1).
Sections: model, lora, data, train, dpo, wandb, export. Examples:
  train.output_dir=runs/a  train.epochs=1  train.max_steps=20  lora.r=8  data.packing=false
  train.resume=never       export.after_train=false           export.push_to_hub=you/repo
Preference stage (pairs in data.train_files, model and lora from the SFT run):
  train.stage=dpo dpo.sft_run=runs/smollm2 dpo.loss=sigmoid|ipo dpo.beta=0.1 dpo.sft_weight=0.5
W&B logging is on only when WANDB_API_KEY is set. See docs/training.md."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="LoRA-fine-tune a model on conversations (SFT) or preference pairs (DPO, IPO)",
        description="Train a LoRA adapter; outputs go to train.output_dir (resumable). "
        "train.stage=dpo continues an SFT run's adapter on preference pairs.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/tiny-cpu.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="section.key=value overrides")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "export",
        help="merge a run's LoRA adapter into the 16-bit base, verify, optionally push to the Hub",
        description="Merge, save safetensors + tokenizer + chat template, verify generation stops "
        "at <|im_end|>, save the adapter alone, write tutor.json; optionally push (needs HF_TOKEN).",
    )
    e.add_argument("--run", required=True, help="run dir written by `socratic train`")
    e.add_argument("--out", default=None, help="export dir (default: RUN/export)")
    e.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO_ID",
        help="push merged weights to REPO_ID and the adapter to REPO_ID-lora (needs HF_TOKEN)",
    )
    e.add_argument("--private", action="store_true", help="create the Hub repos as private")
    e.add_argument(
        "--allow-unverified",
        action="store_true",
        help="keep and push the export even when verify generation does not stop at <|im_end|> "
        "(default: exit 1, nothing pushed; config export.allow_unverified)",
    )
    e.add_argument(
        "--gguf",
        default=None,
        metavar="TYPES",
        help="comma-separated GGUF types to write into EXPORT/gguf with an Ollama Modelfile, "
        "each verified in llama.cpp, e.g. f16,q4_k_m (16/32-bit by llama.cpp's converter, "
        "q8_0 and k-quants by its quantiser; a wrong name lists the choices); pushed to "
        "REPO_ID-gguf (default: export.gguf, none; needs the gguf extra, docs/training.md)",
    )
    e.add_argument(
        "overrides",
        nargs="*",
        metavar="export.KEY=VALUE",
        help="export settings over the run's config.yaml, e.g. export.dtype=bfloat16",
    )
    e.set_defaults(func=cmd_export)


def cmd_train(args: argparse.Namespace) -> int:
    """Errors of the project's own (config, data, export, push) reach `tutor.cli` as one line."""
    from trainer.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from trainer.memory import use_better_allocator

    use_better_allocator()  # may re-execute this command under tcmalloc, before torch loads
    from trainer.stages import run_stage

    run_dir = run_stage(cfg)
    print(f"run dir: {run_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from trainer.export import export_run

    out = export_run(
        args.run,
        args.out,
        args.push_to_hub,
        args.private,
        allow_unverified=args.allow_unverified,
        overrides=args.overrides,
        gguf=args.gguf,
    )
    print(f"export dir: {out}")
    return 0


if __name__ == "__main__":  # `accelerate launch -m trainer.cli train ...` / `torchrun -m ...`
    import sys

    from tutor.cli import main

    sys.exit(main())
