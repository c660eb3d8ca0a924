"""deploy: a trained student merged, quantized (torchao int8 / int4, GGUF q8_0 / q4_k_m), each format
measured in its own process and graded by the one grading entry point; the report's Deployment
section. A tiny random Llama with the embedded tokenizer, and the embedded SmolLM2-135M, each trained a few
steps on the raw arm."""

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from conftest import raw_arm_data

from schemas.config import FactoryConfig
from schemas.tables import read_table
from students.deploy import Unavailable, llama_cpp_dir
from students.deployment import read_measurements, run_deploy
from students.stages import run_train

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
# torchao is the deploy extra's, not `make test`'s: installed, transformers imports it on every model load (~4 s)
HAS_TORCHAO = importlib.util.find_spec("torchao") is not None


def converter_or_reason(cfg) -> str | None:
    try:
        llama_cpp_dir(cfg.deploy)
        return None
    except Unavailable as e:
        return str(e)


def spread_llama(target: Path, seed: int = 1) -> str:
    """conftest's tiny Llama with weights 10x wider (std 0.2): its greedy answers differ from problem to
    problem (at std 0.02 every answer is the same run of newlines, and any two formats would agree).
    Seeded: drawn from whatever random state earlier tests left, its figures moved with test order (int8
    agreed on 7 of 10 in one order). Seeds 0-4 here: 7 distinct merged answers each; int8 agreed on 7, 10,
    10, 9, 10 and q8_0 on 9, 9, 10, 9 (seeds 1-4) of 10. Seed 1 is used."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from students.model import load_tokenizer

    tok = load_tokenizer("embedded")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, initializer_range=0.2)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(target)
    tok.save_pretrained(target)
    return str(target)


@pytest.fixture(scope="module", params=["spread", "embedded"])
def deployed(request, tmp_path_factory):
    """The raw arm's LoRA student trained a few steps and deployed in every format this install writes:
    on the spread tiny Llama, and on the embedded SmolLM2-135M (the model the research deploys)."""
    model = spread_llama(tmp_path_factory.mktemp("spread-llama")) if request.param == "spread" else "embedded"
    data = raw_arm_data(tmp_path_factory.mktemp("deploy"), 40)
    formats = ["safetensors"] + (["int8", "int4"] if HAS_TORCHAO else [])
    probe = FactoryConfig()
    formats += ["q8_0"] if converter_or_reason(probe) is None else []
    formats += ["q4_k_m"] if converter_or_reason(probe) is None and HAS_LLAMA_CPP else []
    cfg = FactoryConfig.model_validate(dict(
        data_dir=str(data.root), arms={"arms": ["raw"]},
        train={"model": model, "methods": ["lora"], "epochs": 0.25,
               "lora": {"learning_rate": 0.05 if request.param == "spread" else 1e-3}},
        evaluate={"splits": ["test"], "max_new_tokens": 12 if request.param == "spread" else 48, "batch_size": 10},
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
    assert "int8" not in sizes or sizes["int8"] < sizes["safetensors"]


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
    chats = [[{"role": "user", "content": p}] for p in prompts]
    tok, n, stop = load_tokenizer(cfg.train.model), cfg.evaluate.max_new_tokens, cfg.evaluate.stop_at_answer
    got = [g.text for g in generate(model, tok, chats, n, stop_at_answer=stop)]
    assert got == answers(data, cfg, "safetensors")["response"].to_list()
    with model.disable_adapter():  # the adapter matters: without it the answers differ
        assert [g.text for g in generate(model, tok, chats, n, stop_at_answer=stop)] != got
    assert len(set(got)) > 5  # answers differ between problems, so agreeing means something


@pytest.mark.parametrize("fmt", ["int8", "q8_0"])
def test_eight_bit_formats_agree_with_the_merged_model(deployed, fmt):
    cfg, data, _ = deployed
    if fmt not in cfg.deploy.formats:
        why = "torchao is not installed (make deploy-extra)" if fmt == "int8" else converter_or_reason(cfg)
        pytest.skip(f"{fmt} not written here: {why}")
    if fmt == "q8_0" and not HAS_LLAMA_CPP:
        pytest.skip("q8_0 is written but not answered here: llama-cpp-python is not installed")
    merged, other = answers(data, cfg, "safetensors"), answers(data, cfg, fmt)
    if cfg.train.model == "embedded":  # a model that commits to answers: the same answer committed to
        assert merged["extracted"].count() >= 5  # most answers commit within 48 tokens: agreeing means something
        same = sum(a is not None and a == b for a, b in zip(merged["extracted"], other["extracted"], strict=True))
    else:  # the spread tiny Llama commits to nothing: the same start of its text
        same = sum(a[:20] == b[:20] for a, b in zip(merged["response"], other["response"], strict=True))
    assert same >= 9, list(zip(merged["response"], other["response"], strict=True))


def test_export_holds_the_chosen_format_and_a_model_card(deployed):
    cfg, data, rows = deployed
    folder = data.deploy(cfg.run) / "raw-lora"
    card = (folder / "README.md").read_text()
    chosen = next(r for r in rows if r["format"] == cfg.deploy.export) if cfg.deploy.export in cfg.deploy.formats \
        else rows[0]
    assert f"({chosen['format']})" in card.splitlines()[0] and "arm `raw`" in card
    assert ("llama-cli" in card) == (chosen["format"] in ("q8_0", "q4_k_m"))
    shipped = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    source = sorted(p.name for p in Path(chosen["path"]).iterdir()) if Path(chosen["path"]).is_dir() \
        else [Path(chosen["path"]).name]
    assert shipped == source


def test_report_section_from_the_deployed_figures(deployed, tmp_path):
    from reports.deploy import deployment_summary, plot_deployment, render_deployment
    from reports.plots import _pyplot

    cfg, data, rows = deployed
    evals = read_table(data.deploy(cfg.run) / "evals.parquet", "evals")
    summary = deployment_summary(read_measurements(data.deploy(cfg.run)), evals, cfg.deploy.margin, 0.95)
    text = "\n".join(render_deployment({"deployment": summary}))
    assert "## Deployment" in text and all(f"| raw-lora | {r['format']}" in text for r in rows)
    assert [h["student"] for h in summary["non_inferiority"]] == ["raw-lora"]
    assert any(r["pareto"] for r in summary["rows"])
    assert plot_deployment({"deployment": summary}, tmp_path / "d.png", _pyplot) and (tmp_path / "d.png").stat().st_size


def frame(student: str, correct: list[bool]) -> pl.DataFrame:
    return pl.DataFrame({"student": [student] * len(correct), "problem_id": [f"p{i}" for i in range(len(correct))],
                         "correct": correct})


@pytest.mark.parametrize("lost, verdict", [(0, "supported"), (60, "contradicted"), (8, "inconclusive")])
def test_non_inferiority_verdict_against_the_margin(lost, verdict):
    """200 paired answers; the 4-bit format loses `lost` of the merged model's 150 right ones (and wins none):
    the paired interval of the difference is compared with -margin (5 points)."""
    from reports.deploy import deployment_summary

    merged = [True] * 150 + [False] * 50
    q4 = [i >= lost for i in range(150)] + [False] * 50
    evals = pl.concat([frame("s@safetensors", merged), frame("s@q4_k_m", q4)])
    rows = [dict(student="s", format=f, status="measured", peak_rss_mb=m, n=200, accuracy=sum(c) / 200)
            for f, m, c in (("safetensors", 900.0, merged), ("q4_k_m", 300.0, q4))]
    out = deployment_summary(rows, evals, 0.05, 0.95)
    (h,) = out["non_inferiority"]
    assert h["format"] == "q4_k_m" and h["n"] == 200 and h["difference"] == pytest.approx(-lost / 200)
    assert h["verdict"] == verdict
    assert {(r["format"], r["pareto"]) for r in out["rows"]} == ({("safetensors", False), ("q4_k_m", True)} if lost == 0
                                                              else {("safetensors", True), ("q4_k_m", True)})


def test_summary_json_and_report_carry_the_deployment(deployed, tmp_path):
    from reports.report import ReportInputs, write_report
    from schemas.config import ReportConfig

    cfg, data, rows = deployed
    evals = read_table(data.deploy(cfg.run) / "evals.parquet", "evals")
    inputs = ReportInputs(run=cfg.run, evals=evals, problems=read_table(data.table("problems"), "problems"),
                          deploy=read_measurements(data.deploy(cfg.run)), deploy_evals=evals,
                          deploy_margin=cfg.deploy.margin)
    report = write_report(tmp_path, inputs, ReportConfig())
    summary = json.loads((tmp_path / "summary.json").read_text())
    got = {r["format"]: r for r in summary["deployment"]["rows"]}
    assert list(got) == cfg.deploy.formats
    for r in rows:
        assert got[r["format"]]["size_bytes"] == r["size_bytes"]
        assert got[r["format"]]["accuracy"] == r["accuracy"] and got[r["format"]]["generation_tps"] == r["generation_tps"]
    assert "## Deployment" in report.read_text() and (tmp_path / "deployment.png").exists()


def evals_rows(student: str, arm: str, split: str, correct: list[bool]) -> pl.DataFrame:
    from schemas.tables import SCHEMAS

    blank = dict.fromkeys(SCHEMAS["evals"])
    return pl.DataFrame([blank | dict(run="default", student=student, arm=arm, method="lora", problem_id=f"p{i}",
                                      split=split, prompt_style="cot", variant="plain", decoding="greedy",
                                      sample_index=0, response="", correct=c) for i, c in enumerate(correct)],
                        schema=SCHEMAS["evals"])


def test_best_is_the_most_accurate_trained_student_on_val(tmp_path):
    """`best` resolves through students.choose.best_student: on val, never on test."""
    from schemas.errors import InputError
    from schemas.paths import DataDir
    from schemas.tables import write_table
    from students.deployment import chosen

    data = DataDir(tmp_path)
    cfg = FactoryConfig.model_validate(dict(data_dir=str(tmp_path), arms={"arms": ["raw", "answer_only"]},
                                            train={"methods": ["lora"]}))
    with pytest.raises(InputError, match="no evaluated trained student"):
        chosen(cfg, data, ["best", "base"])
    val = {"raw-lora": [True, False, False, False], "answer_only-lora": [True, True, True, False]}
    test = {"raw-lora": [True] * 4, "answer_only-lora": [False] * 4}  # test would pick the other one
    for name, arm in (("raw-lora", "raw"), ("answer_only-lora", "answer_only")):
        df = pl.concat([evals_rows(name, arm, "val", val[name]), evals_rows(name, arm, "test", test[name])])
        write_table(df, data.evals(cfg.run) / f"{name}.parquet", "evals")
    assert chosen(cfg, data, ["best", "base", "answer_only-lora"]) == ["answer_only-lora", "base"]
    on_test = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"splits": ["test"]})})
    with pytest.raises(InputError, match="chosen on val"):  # never a fall-back to the reported split
        chosen(on_test, data, ["best"])
