"""What a trainer trains, shared by SFT (students/train.py) and GRPO (students/grpo.py): the base model
(loaded once per run within `one_base()`), its processing class, and the peft config of a method."""

from contextlib import contextmanager

from schemas.config import TrainConfig
from students.model import release_memory

_bases: dict[str, object] | None = None  # within `one_base()`: model name -> the base text arms train on


@contextmanager
def one_base():
    """Within: text SFT arms train on one loaded base model instead of loading it per arm. Base weights
    never train; each trainer's adapter is taken out after training (`restore`), so every arm starts
    from the weights as loaded."""
    global _bases
    _bases = {}
    try:
        yield
    finally:
        _bases = None
        release_memory()


def base_model(name: str):
    from students.model import load_model

    if _bases is None:
        return load_model(name)
    if name not in _bases:
        _bases[name] = load_model(name)
    return _bases[name]


def restore(model) -> None:
    """The base model as loaded again, out of a trained PeftModel: LoRA layers taken out unmerged (a
    soft prompt sits outside it), trainable and in eval mode as `load_model` gives it."""
    base = model.unload() if model.peft_config["default"].peft_type == "LORA" else model.get_base_model()
    base.requires_grad_(True)
    base.eval()


def lora_targets(cfg: TrainConfig, model) -> str | list[str]:
    """`auto`: every linear layer of a text student, only the language model's of a vlm student."""
    if cfg.lora.targets != "auto":
        return cfg.lora.targets
    if cfg.student == "vlm":
        from students.vlm import language_layers

        return language_layers(model)
    return "all-linear"


def peft_config(method: str, cfg: TrainConfig, tokenizer_path: str, model=None):
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit

    if method in ("lora", "grpo"):
        return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=lora_targets(cfg, model), task_type="CAUSAL_LM")
    if method == "prompt_tuning":
        pt = cfg.prompt_tuning
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=pt.num_virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=pt.init_text,
                                  tokenizer_name_or_path=tokenizer_path)
    raise ValueError(f"unknown training method {method!r}; choose lora or prompt_tuning")


def trainee(cfg: TrainConfig, shared: bool = False):
    """(the base model a trainer starts from, its processing class): a vlm with its processor, a text model
    with its tokenizer (`shared`: the one base of `one_base()`, which SFT restores after each arm)."""
    from students.model import load_model, load_tokenizer

    if cfg.student == "vlm":
        from students.vlm import load_processor, load_vlm

        return load_vlm(cfg.model), load_processor(cfg.model)
    return (base_model(cfg.model) if shared else load_model(cfg.model)), load_tokenizer(cfg.model)
