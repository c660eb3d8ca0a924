"""train: one peft adapter per (arm, method): trl's SFTTrainer with the loss on the completion only,
or trl's GRPOTrainer with the verifier as reward (students/grpo.py).

Methods: `lora`, `prompt_tuning` (a soft prompt initialised from text), `grpo` and `lora+grpo`.
A `vlm` student trains on the same arms with the image (students/vlm.py), with any method: SFT
(`lora`, `prompt_tuning`) and GRPO (`grpo`, `lora+grpo`) see the picture; a `compose` student (encoder
+ projector + LM) with its own two-stage loop (students/compose.py). Examples longer than
`max_length` tokens are left out and counted (trl would cut their completions, or drop them
without a word when the prompt alone fills the limit); an arm with none left is skipped with
the reason. Checkpoints make a killed run resumable; a finished adapter whose fingerprint
matches is not trained again.
"""

import hashlib
import json
import shutil
import time
from pathlib import Path

import polars as pl

from schemas import atomic
from schemas.config import TrainConfig
from schemas.progress import Progress
from students import bases
from students.bases import peft_config, restore, trainee
from students.model import release_memory

META = "train_meta.json"


def fingerprint(cfg: TrainConfig, method: str, arm_df: pl.DataFrame, seed: int = 0, init: str = "") -> str:
    """Identifies an adapter: base model, student kind, method, hyper-parameters, seed, the exact training
    rows (and pictures), the adapter it starts from and what else it depends on (`init`)."""
    columns = [c for c in ("prompt", "completion", "image_sha") if c in arm_df.columns]
    data = json.dumps(arm_df.select(columns).to_dicts(), sort_keys=True)
    unused = {"methods", "seeds"} | ({"compose"} if cfg.student != "compose" else set())  # others' keys unchanged
    payload = json.dumps({"cfg": cfg.model_dump(exclude=unused), "method": method, "data": data,
                          "seed": seed, "init": init}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_meta(out_dir: Path) -> dict | None:
    f = Path(out_dir) / META
    return json.loads(f.read_text()) if f.exists() else None


def write_meta(out_dir: Path, meta: dict) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic.write_text(Path(out_dir) / META, json.dumps(meta, indent=2))  # last: its presence means the adapter is complete


def example_lengths(cfg: TrainConfig, rows: list[dict]) -> list[int]:
    """Tokens of each example as trl lays it out: chat template over prompt + completion (and the image)."""
    if cfg.student in ("vlm", "compose"):
        from students.compose import compose_processor
        from students.vlm import example_length, load_processor

        processor = load_processor(cfg.model) if cfg.student == "vlm" else \
            compose_processor(cfg.model, cfg.compose.encoder, cfg.compose.image_tokens)
        return [example_length(processor, r) for r in rows]
    from students.model import load_tokenizer

    tok = load_tokenizer(cfg.model)
    return [len(tok.apply_chat_template(r["prompt"] + r["completion"], return_dict=True)["input_ids"]) for r in rows]


def fitting(cfg: TrainConfig, method: str, rows: list[dict]) -> tuple[dict[int, int], int]:
    """The examples that fit `max_length` (a soft prompt takes its virtual tokens too) with their lengths
    in tokens; how many did not. GRPO examples are prompts: they fit when they leave room for a completion."""
    room = cfg.max_length - (cfg.prompt_tuning.num_virtual_tokens if method == "prompt_tuning" else 0)
    if "grpo" in method:
        room -= cfg.grpo.max_completion_length
        rows = [r | {"completion": []} for r in rows]  # the prompt (and a vlm's picture) alone
    fits = {i: n for i, n in enumerate(example_lengths(cfg, rows)) if n <= room}
    return fits, len(rows) - len(fits)


def train_student(cfg: TrainConfig, method: str, arm: str, arm_df: pl.DataFrame, out_dir: Path,
                  seed: int = 0, rows: list[dict] | None = None, init_dir: Path | None = None,
                  depends: str = "") -> dict:
    """Trains (or reuses) the adapter for `arm` with `method` and `seed` in `out_dir`; returns its metadata.
    `rows`: the trainer's examples when they are not the arm's prompt/completion (a vlm's, with images;
    grpo's, with the problem to grade); `init_dir`: the adapter GRPO starts from; `depends`: settings
    outside `cfg` the result depends on (grpo: how verify grades the rewards)."""
    out_dir = Path(out_dir)
    init = (read_meta(init_dir)["fingerprint"] if init_dir else "") + depends
    fp = fingerprint(cfg, method, arm_df, seed, init)
    meta = read_meta(out_dir)
    if meta and meta["fingerprint"] == fp:
        return meta | {"reused": True}
    base = dict(arm=arm, method=method, seed=seed, fingerprint=fp, base_model=cfg.model, train_examples=arm_df.height,
                student_kind=cfg.student, init=str(init_dir.name) if init_dir else "base")
    rows = rows if rows is not None else arm_df.select("prompt", "completion").to_dicts()
    fits, too_long = fitting(cfg, method, rows) if rows else ({}, 0)
    usable = [rows[i] for i in fits]
    base |= dict(too_long=too_long)
    limit = f"train.max_length ({cfg.max_length} tokens" + (
        f", less grpo.max_completion_length {cfg.grpo.max_completion_length})" if "grpo" in method else ")")
    reason = ("no training examples" if not rows else
              f"all {too_long} examples are longer than {limit}" if not usable else None)
    if reason:
        meta = base | dict(status="skipped", reason=reason, train_tokens=0, wall_s=0.0, device="none")
    else:
        with Progress(f"train {out_dir.name}", total=0, unit="steps") as progress:
            trained = run_trainer(cfg, method, usable, out_dir, progress, seed, init_dir)
        if "grpo" not in method and cfg.student != "compose":  # SFT: every example's tokens, once per epoch
            trained["train_tokens"] = int(sum(fits.values()) * cfg.epochs)
        meta = base | trained | {"status": "trained", "train_examples": len(usable)}
    write_meta(out_dir, meta)
    return meta


def sft_args(cfg: TrainConfig, method: str, checkpoints: Path, seed: int = 0):
    import torch
    from trl import SFTConfig

    lr = cfg.lora.learning_rate if method == "lora" else cfg.prompt_tuning.learning_rate
    return SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=lr, max_length=cfg.max_length, completion_only_loss=True, seed=seed,
        bf16=torch.cuda.is_available(), gradient_checkpointing=False, report_to="none", logging_steps=5,
        save_strategy="steps", save_steps=25, save_total_limit=1, save_only_model=False,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True,
    )


def progress_callback(progress: Progress):
    """A transformers TrainerCallback that moves `progress` one step per optimiser step."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.reset(total=state.max_steps, done=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
            progress.update(state.global_step - progress.done, loss=None if loss is None else round(loss, 4))

    return StepProgress()


def build_trainer(cfg: TrainConfig, method: str, rows: list[dict], checkpoints: Path,
                  progress: Progress | None = None, seed: int = 0, init_dir: Path | None = None):
    """trl's SFTTrainer on prompt/completion rows with the method's peft config (a vlm student: with
    its processor and images), or GRPOTrainer for the grpo methods."""
    from datasets import Dataset
    from trl import SFTTrainer

    from students.model import resolve

    callbacks = [progress_callback(progress)] if progress else None
    if "grpo" in method:
        from students.grpo import build_grpo

        return build_grpo(cfg, rows, checkpoints, callbacks, seed, init_dir)
    model, processing = trainee(cfg, shared=True)
    return SFTTrainer(model=model, args=sft_args(cfg, method, checkpoints, seed), train_dataset=Dataset.from_list(rows),
                      processing_class=processing, peft_config=peft_config(method, cfg, resolve(cfg.model), model),
                      callbacks=callbacks)


def run_trainer(cfg: TrainConfig, method: str, rows: list[dict], out_dir: Path,
                progress: Progress | None = None, seed: int = 0, init_dir: Path | None = None) -> dict:
    if read_meta(out_dir) is not None:  # stale adapter from other data or settings
        (out_dir / META).unlink()
    if cfg.student == "compose":  # its own two-stage loop, no trl trainer
        from students.compose import train_compose

        return train_compose(cfg, rows, out_dir, progress, seed)
    checkpoints = out_dir / "checkpoints"
    try:
        trainer = build_trainer(cfg, method, rows, checkpoints, progress, seed, init_dir)
    except BaseException:
        if bases._bases is not None:  # the shared base may hold half a peft model now: the next arm loads its own
            bases._bases.pop(cfg.model, None)
        raise
    try:
        start = time.perf_counter()
        resume = checkpoints.exists() and any(checkpoints.glob("checkpoint-*"))
        result = trainer.train(resume_from_checkpoint=True if resume else None)
        wall = time.perf_counter() - start
        trainer.save_model(str(out_dir))  # the adapter only: adapter_config.json + adapter_model.safetensors
        shutil.rmtree(checkpoints, ignore_errors=True)
        shutil.rmtree(out_dir / "ref", ignore_errors=True)  # GRPO from an adapter: trl's frozen copy (KL reference)
        return dict(train_tokens=int(trainer.state.num_input_tokens_seen or 0), wall_s=round(wall, 2), resumed=resume,
                    train_loss=float(result.training_loss), steps=int(result.global_step),
                    device=str(trainer.args.device))
    finally:
        if bases._bases is not None and "grpo" not in method and cfg.student == "causal_lm":
            restore(trainer.model)  # the next arm's base
        del trainer  # the model, optimiser and cached batches go back to the system
        release_memory()

