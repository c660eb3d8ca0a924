"""train within `one_base()`: the arms share one loaded base model, and each starts from the weights
as loaded: an adapter trained after other arms equals one trained on a freshly loaded base."""

import polars as pl
import torch
from safetensors.torch import load_file

from schemas.config import TrainConfig
from students.bases import base_model, one_base
from students.model import load_model
from students.train import train_student


def rows(n: int, offset: int) -> pl.DataFrame:
    return pl.DataFrame([
        {"prompt": [{"role": "user", "content": f"What is {i} plus {offset}?"}],
         "completion": [{"role": "assistant", "content": f"{i} + {offset} = {i + offset}. The answer is {i + offset}."}]}
        for i in range(n)])


def same_model(a, b) -> bool:
    kinds = [(n, type(m)) for n, m in a.named_modules()] == [(n, type(m)) for n, m in b.named_modules()]
    params = {n: p for n, p in a.named_parameters()}, {n: p for n, p in b.named_parameters()}
    return kinds and params[0].keys() == params[1].keys() and all(
        torch.equal(p, params[1][n]) and p.requires_grad == params[1][n].requires_grad for n, p in params[0].items())


def test_arms_on_one_base_start_from_the_weights_as_loaded(tiny_model, tmp_path):
    cfg = TrainConfig(model=tiny_model, batch_size=4, epochs=1)
    fresh = load_model(tiny_model)
    with one_base():
        shared = base_model(tiny_model)
        for i, method in enumerate(["lora", "prompt_tuning", "lora"]):
            meta = train_student(cfg, method, f"arm{i}", rows(6, i), tmp_path / f"shared{i}")
            assert meta["status"] == "trained"
            assert base_model(tiny_model) is shared and same_model(shared, fresh)  # loaded once, as loaded
    alone = train_student(cfg, "lora", "arm2", rows(6, 2), tmp_path / "alone")  # a base of its own
    after_others = load_file(tmp_path / "shared2" / "adapter_model.safetensors")
    own = load_file(tmp_path / "alone" / "adapter_model.safetensors")
    assert after_others.keys() == own.keys() and all(torch.equal(after_others[k], own[k]) for k in own)
    assert alone["train_loss"] == meta["train_loss"]
    first = load_file(tmp_path / "shared0" / "adapter_model.safetensors")
    assert not all(torch.equal(first[k], own[k]) for k in own)  # the data made a difference: the test can fail
