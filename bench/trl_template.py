"""A ChatML training template with TRL's generation markers, for models whose own template TRL
cannot patch (SmolLM2): what `bench.trl_bench` hands TRL's SFTTrainer so it trains on the same
tokens as the project (each assistant content and its <|im_end|>).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# A ChatML template with TRL's generation markers around what the project trains (each assistant
# content and its <|im_end|>); used when TRL cannot patch the model's own template (SmolLM2).
CHATML_TRAINING = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ DEFAULT_SYSTEM }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def training_template(tokenizer: Any, out: Path) -> str | None:
    """None when TRL patches the model's template itself (Qwen2.5 ...); else a ChatML template with
    generation markers, checked to render exactly like the model's own."""
    from trl.chat_template_utils import get_training_chat_template

    try:
        get_training_chat_template(tokenizer)
        return None
    except ValueError:
        pass
    template = chatml_training_template(tokenizer)
    path = out / "training_template.jinja"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(template, encoding="utf-8")
    return str(path)


def chatml_training_template(tokenizer: Any) -> str:
    """CHATML_TRAINING with the model's default system turn; raises when it renders differently
    from the model's template."""
    probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    own = tokenizer.apply_chat_template(probe, tokenize=False)
    default_system = own[: own.index("<|im_start|>user")]
    template = CHATML_TRAINING.replace(
        "{{ DEFAULT_SYSTEM }}", "{{ " + json.dumps(default_system) + " }}"
    )
    for conv in (probe, [{"role": "system", "content": "s"}, *probe, *probe]):
        for gen in (False, True):
            a = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            b = tokenizer.apply_chat_template(
                conv, tokenize=False, add_generation_prompt=gen, chat_template=template
            )
            if a != b:
                raise ValueError(
                    "the model's chat template is not ChatML: no TRL training template"
                )
    return template
