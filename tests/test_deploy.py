"""deploy: a trained student merged, quantized (torchao int8 / int4, GGUF q8_0 / q4_k_m), each format
measured in its own process and graded by the one grading entry point; the report's Deployment
section. A tiny random Llama with the embedded tokenizer, trained a few steps on the raw arm."""

import importlib.util
import json

import polars as pl
import pytest
from conftest import raw_arm_data

from schemas.config import FactoryConfig
from schemas.tables import read_table
from students.deploy import Unavailable, llama_cpp_dir
from students.deployment import read_measurements, run_deploy
from students.stages import run_train

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


def converter_or_reason(cfg) -> str | None:
    try:
        llama_cpp_dir(cfg.deploy)
        return None
    except Unavailable as e:
        return str(e)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, tiny_model):
    data = raw_arm_data(tmp_path_factory.mktemp("deploy"), 40)
    formats = ["safetensors", "int8", "int4"]
    probe = FactoryConfig()
    formats += ["q8_0"] if converter_or_reason(probe) is None else []
    formats += ["q4_k_m"] if converter_or_reason(probe) is None and HAS_LLAMA_CPP else []
    cfg = FactoryConfig.model_validate(dict(
        data_dir=str(data.root), arms={"arms": ["raw"]},
        train={"model": tiny_model, "methods": ["lora"], "epochs": 0.25},
        evaluate={"splits": ["test"], "max_new_tokens": 12, "batch_size": 10},
        deploy={"students": ["raw-lora"], "formats": formats, "limit": 10, "measure_tokens": 8}))
    run_train(cfg, data, "raw", "lora")
    return cfg, data, run_deploy(cfg, data, "raw-lora")


def answers(data, cfg, fmt: str) -> pl.DataFrame:
    evals = read_table(data.deploy(cfg.run) / "evals.parquet", "evals")
    return evals.filter(pl.col("student") == f"raw-lora@{fmt}").sort("problem_id")


def test_every_format_is_measured_and_graded(deployed):
    cfg, data, rows = deployed
    assert [r["format"] for r in rows] == cfg.deploy.formats
    for r in rows:
        if r["format"] in ("q8_0", "q4_k_m") and not HAS_LLAMA_CPP:  # written; answering needs the runtime
            assert r["status"] == "written" and r["size_bytes"] > 0 and "llama-cpp-python" in r["reason"], r
            continue
        assert r["status"] == "measured", r
        assert r["size_bytes"] > 0 and r["peak_rss_mb"] > 0 and r["generation_tps"] > 0 and r["prompt_tps"] > 0
        assert r["n"] == 10 and 0.0 <= r["accuracy"] <= 1.0
        df = answers(data, cfg, r["format"])
        assert df.height == 10 and df["grader"].null_count() == 0  # graded by grade_all
        assert r["accuracy"] == pytest.approx(df["correct"].mean())
    assert read_measurements(data.deploy(cfg.run)) == json.loads(json.dumps(rows))
    sizes = {r["format"]: r["size_bytes"] for r in rows}
    assert sizes["int8"] < sizes["safetensors"]


def test_merged_answers_as_base_plus_adapter(deployed):
    """The merged checkpoint gives the unmerged peft model's greedy answers (an independent path)."""
    from peft import PeftModel

    from students.deployment import problems_of, prompts_of
    from students.generate import generate
    from students.model import load_model, load_tokenizer

    cfg, data, _ = deployed
    model = PeftModel.from_pretrained(load_model(cfg.train.model), str(data.student(cfg.run, "raw-lora"))).eval()
    rows = problems_of(cfg, data).to_dicts()
    prompts, _ = prompts_of(cfg, data, "raw", rows)
    got = generate(model, load_tokenizer(cfg.train.model), [[{"role": "user", "content": p}] for p in prompts],
                   cfg.evaluate.max_new_tokens, stop_at_answer=cfg.evaluate.stop_at_answer)
    assert [g.text for g in got] == answers(data, cfg, "safetensors")["response"].to_list()


@pytest.mark.parametrize("fmt", ["int8", "q8_0"])
def test_eight_bit_formats_agree_with_the_merged_model(deployed, fmt):
    cfg, data, _ = deployed
    if fmt not in cfg.deploy.formats:
        pytest.skip(f"{fmt} not written here: {converter_or_reason(cfg)}")
    if fmt == "q8_0" and not HAS_LLAMA_CPP:
        pytest.skip("q8_0 is written but not answered here: llama-cpp-python is not installed")
    merged, other = answers(data, cfg, "safetensors"), answers(data, cfg, fmt)
    same = sum(a[:20] == b[:20] for a, b in zip(merged["response"], other["response"], strict=True))
    assert same >= 9, list(zip(merged["response"], other["response"], strict=True))
