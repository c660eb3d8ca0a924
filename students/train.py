"""train: one peft adapter per (arm, method) with trl's SFTTrainer, loss on the completion only.

Methods: `lora` and `prompt_tuning` (a soft prompt initialised from text). Examples longer than
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
from students.model import release_memory
from tasks.progress import Progress

META = "train_meta.json"


def fingerprint(cfg: TrainConfig, method: str, arm_df: pl.DataFrame, seed: int = 0) -> str:
    """Identifies an adapter: base model, method, hyper-parameters, seed and the exact training rows."""
    data = json.dumps(arm_df.select("prompt", "completion").to_dicts(), sort_keys=True)
    payload = json.dumps({"cfg": cfg.model_dump(exclude={"methods", "seeds"}), "method": method, "data": data,
                          "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def peft_config(method: str, cfg: TrainConfig, tokenizer_path: str):
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit

    if method == "lora":
        return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
    if method == "prompt_tuning":
        pt = cfg.prompt_tuning
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=pt.num_virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=pt.init_text,
                                  tokenizer_name_or_path=tokenizer_path)
    raise ValueError(f"unknown training method {method!r}; choose lora or prompt_tuning")


def read_meta(out_dir: Path) -> dict | None:
    f = Path(out_dir) / META
    return json.loads(f.read_text()) if f.exists() else None


def write_meta(out_dir: Path, meta: dict) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic.write_text(Path(out_dir) / META, json.dumps(meta, indent=2))  # last: its presence means the adapter is complete


def example_lengths(tok, arm_df: pl.DataFrame) -> list[int]:
    """Tokens of each example as trl lays it out: chat template over prompt + completion."""
    chats = [p + c for p, c in zip(arm_df["prompt"].to_list(), arm_df["completion"].to_list(), strict=True)]
    return [len(tok.apply_chat_template(chat, return_dict=True)["input_ids"]) for chat in chats]


def fitting(cfg: TrainConfig, method: str, arm_df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The examples that fit `max_length` (a soft prompt takes its virtual tokens too); how many did not."""
    from students.model import load_tokenizer

    room = cfg.max_length - (cfg.prompt_tuning.num_virtual_tokens if method == "prompt_tuning" else 0)
    fits = pl.Series([n <= room for n in example_lengths(load_tokenizer(cfg.model), arm_df)], dtype=pl.Boolean)
    return arm_df.filter(fits), int((~fits).sum())


def train_student(cfg: TrainConfig, method: str, arm: str, arm_df: pl.DataFrame, out_dir: Path,
                  seed: int = 0) -> dict:
    """Trains (or reuses) the adapter for `arm` with `method` and `seed` in `out_dir`; returns its metadata."""
    out_dir = Path(out_dir)
    fp = fingerprint(cfg, method, arm_df, seed)
    meta = read_meta(out_dir)
    if meta and meta["fingerprint"] == fp:
        return meta | {"reused": True}
    base = dict(arm=arm, method=method, seed=seed, fingerprint=fp, base_model=cfg.model, train_examples=arm_df.height)
    usable, too_long = fitting(cfg, method, arm_df) if arm_df.height else (arm_df, 0)
    base |= dict(too_long=too_long)
    reason = ("no training examples" if arm_df.height == 0 else
              f"all {too_long} examples are longer than train.max_length ({cfg.max_length} tokens)"
              if usable.height == 0 else None)
    if reason:
        meta = base | dict(status="skipped", reason=reason, train_tokens=0, wall_s=0.0, device="none")
    else:
        with Progress(f"train {out_dir.name}", total=0, unit="steps") as progress:
            trained = run_trainer(cfg, method, usable, out_dir, progress, seed)
        meta = base | trained | {"status": "trained", "train_examples": usable.height}
    write_meta(out_dir, meta)
    return meta


def sft_args(cfg: TrainConfig, method: str, checkpoints: Path, seed: int = 0):
    import torch
    from trl import SFTConfig

    lr = cfg.lora.learning_rate if method == "lora" else cfg.prompt_tuning.learning_rate
    return SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=lr, max_length=cfg.max_length, completion_only_loss=True, seed=seed,
        bf16=False, gradient_checkpointing=False, report_to="none", logging_steps=5,
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


def build_trainer(cfg: TrainConfig, method: str, arm_df: pl.DataFrame, checkpoints: Path,
                  progress: Progress | None = None, seed: int = 0):
    """trl's SFTTrainer on the arm's prompt/completion rows with the method's peft config."""
    from datasets import Dataset
    from trl import SFTTrainer

    from students.model import load_model, load_tokenizer, resolve

    dataset = Dataset.from_list(arm_df.select("prompt", "completion").to_dicts())
    return SFTTrainer(model=load_model(cfg.model), args=sft_args(cfg, method, checkpoints, seed),
                      train_dataset=dataset, processing_class=load_tokenizer(cfg.model),
                      peft_config=peft_config(method, cfg, resolve(cfg.model)),
                      callbacks=[progress_callback(progress)] if progress else None)


def run_trainer(cfg: TrainConfig, method: str, arm_df: pl.DataFrame, out_dir: Path,
                progress: Progress | None = None, seed: int = 0) -> dict:
    if read_meta(out_dir) is not None:  # stale adapter from other data or settings
        (out_dir / META).unlink()
    checkpoints = out_dir / "checkpoints"
    trainer = build_trainer(cfg, method, arm_df, checkpoints, progress, seed)
    try:
        start = time.perf_counter()
        resume = checkpoints.exists() and any(checkpoints.glob("checkpoint-*"))
        result = trainer.train(resume_from_checkpoint=True if resume else None)
        wall = time.perf_counter() - start
        trainer.save_model(str(out_dir))  # the adapter only: adapter_config.json + adapter_model.safetensors
        shutil.rmtree(checkpoints, ignore_errors=True)
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
        return dict(train_tokens=int(tokens * cfg.epochs), wall_s=round(wall, 2), resumed=resume,
                    train_loss=float(result.training_loss), steps=int(result.global_step),
                    device=str(trainer.args.device))
    finally:
        del trainer  # the model, optimiser and cached batches go back to the system
        release_memory()
