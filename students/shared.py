"""Text LoRA students of a run answering over one shared base model: the base is loaded once, every
student's adapter beside the others under its own name (nothing merged), and the evaluation prompts
of all of them are answered in batches that mix adapters (peft's `adapter_names`, one per row;
`__base__` rows are the untuned student). Rows go student after student, so a batch holds few
adapters (peft computes each adapter's update on its own rows). Soft-prompt, vlm and vLLM students
answer one at a time (students/evaluate.py), as does a student with no other to share with.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from schemas.config import EvaluateConfig, FactoryConfig, VerifyConfig
from students.evals import eval_frame
from students.evaluate import Solver, answer
from tasks.prompts import user_message

BASE_ROWS = "__base__"  # peft's name for rows that no adapter touches


def shareable(cfg: FactoryConfig, adapter_dir: Path | None) -> bool:
    """Whether a student can answer in a mixed-adapter batch: a text student answering through
    transformers, untuned or with a plain LoRA adapter (peft mixes neither soft prompts nor DoRA)."""
    if cfg.train.student != "causal_lm" or cfg.evaluate.engine != "transformers":
        return False
    if adapter_dir is None:
        return True
    adapter = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    return adapter.get("peft_type") == "LORA" and not adapter.get("use_dora")


def load_shared(base: str, adapters: dict[str, str]):
    """The base model with each adapter (name -> directory) loaded under its name, for inference."""
    from peft import PeftModel

    from students.model import load_model

    model = load_model(base)
    if not adapters:
        return model
    (first, path), *rest = adapters.items()
    shared = PeftModel.from_pretrained(model, path, adapter_name=first)
    for name, path in rest:
        shared.load_adapter(path, adapter_name=name)
    return shared.eval()


@dataclass
class Member:
    """A student of a shared pass: its adapter's name in the shared model (BASE_ROWS: the untuned
    model), the prompt variants it is asked under, its evals columns (run, student, ...) and seed."""
    adapter: str
    variants: list[str]
    info: dict
    seed: int = 0


def evaluate_shared(solver: Solver, problems: pl.DataFrame, captions: dict[str, str], members: list[Member],
                    cfg: EvaluateConfig, verify: VerifyConfig, judge=None) -> list[pl.DataFrame]:
    """Each member's evals rows, as `evaluate_student` gives them over its variants one student at a
    time: greedy answers of every member asked under a variant, in mixed batches; pass@k samples
    member by member (each seeded as alone)."""
    rows, mixed = problems.to_dicts(), any(m.adapter != BASE_ROWS for m in members)
    greedy: dict[tuple[int, str, str], pl.DataFrame] = {}
    for variant in dict.fromkeys(v for m in members for v in m.variants):
        asked = [i for i, m in enumerate(members) if variant in m.variants]
        for style in cfg.prompts:
            prompts = [user_message(p, captions.get(p["problem_id"]), variant, style) for p in rows]
            got = answer(solver, prompts * len(asked), cfg.max_new_tokens, cfg.batch_size, cfg.stop_at_answer,
                         f"evaluate {len(asked)} students ({variant}, {style})",
                         adapters=[members[i].adapter for i in asked for _ in prompts] if mixed else None)
            for j, i in enumerate(asked):
                info = members[i].info | dict(variant=variant, prompt_style=style, decoding="greedy")
                greedy[i, variant, style] = eval_frame(rows, got[j * len(rows):(j + 1) * len(rows)], info, 1,
                                                       verify, judge)
    return [pl.concat([f for v in m.variants for f in [*(greedy[i, v, s] for s in cfg.prompts),
                                                       *sampled(solver, rows, captions, m, v, cfg, verify, judge,
                                                                mixed)]])
            for i, m in enumerate(members)]


def sampled(solver: Solver, rows: list[dict], captions: dict[str, str], member: Member, variant: str,
            cfg: EvaluateConfig, verify: VerifyConfig, judge, mixed: bool) -> list[pl.DataFrame]:
    """The member's k sampled answers to the `cot` prompt under `variant` (none when k is 1)."""
    import torch

    if cfg.k == 1:
        return []
    torch.manual_seed(member.seed)
    prompts = [user_message(p, captions.get(p["problem_id"]), variant, "cot") for p in rows]
    got = answer(solver, prompts, cfg.max_new_tokens, max(1, cfg.batch_size // cfg.k), cfg.stop_at_answer,
                 f"evaluate {member.info['student']} (pass@{cfg.k})", k=cfg.k, temperature=cfg.temperature,
                 adapters=[member.adapter] * len(prompts) if mixed else None)
    info = member.info | dict(variant=variant, prompt_style="cot", decoding="sampled")
    return [eval_frame(rows, got, info, cfg.k, verify, judge)]
