"""Tool-calling students (students/tools.py): a tiny Llama built to call `caption` until a tool has
answered, then to answer, runs the production loop (template, parse, the factory's reply, the next turn);
the report's tool-use table is checked against a brute-force count of planted evals rows."""

import polars as pl
import pytest
import torch
from conftest import ROOT, raw_arm_data

from schemas.config import EvaluateConfig, FactoryConfig, VerifyConfig
from schemas.tables import SCHEMAS, read_table, write_table

CALL = '<tool_call>{"name": "caption"}</tool_call>'
ANSWER = "The answer is (A)."
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]  # as Qwen2.5's vocabulary has them


def chain(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def make_tool_caller(target) -> str:
    """A 1-layer Llama whose greedy turn is CALL while no `<tool_response>` is in its context and ANSWER after
    one (then eos). Each token of the two sequences has a one-hot embedding and the lm_head maps it to its
    successor; one attention head with a constant query and a key only on `<tool_response>` (on the slowest
    rotary pair, theta 1e12: no rotation over a chat) writes a flag that turns the turn's first token from
    CALL's to ANSWER's."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from students.model import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded"))
    tok.add_tokens(ADDED)
    newline, call, answer = chain(tok, "\n")[0], chain(tok, CALL), chain(tok, ANSWER)
    states = [newline, *call, *answer]
    assert len(set(states)) == len(states)  # a token's successor is its own: no token twice
    key, flag, hidden = len(states), len(states) + 1, 64
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, attention_bias=True, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e12}, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.model.norm, model.model.layers[0].input_layernorm,
                     model.model.layers[0].post_attention_layernorm):
            norm.weight.fill_(1.0)
        emb, head, attn = model.model.embed_tokens.weight, model.lm_head.weight, model.model.layers[0].self_attn
        for i, t in enumerate(states):
            emb[t, i] = 1.0
        emb[tok.convert_tokens_to_ids("<tool_response>"), key] = 1.0
        slow = hidden // 2 - 1  # rotary pair (31, 63): the lowest frequency
        attn.q_proj.bias[slow] = 1.0
        attn.k_proj.weight[slow, key] = 30.0  # score 30 on a tool response, 0 elsewhere
        attn.v_proj.weight[0, key] = 1.0
        attn.o_proj.weight[flag, 0] = 1.0
        for seq in (call, answer):
            for a, b in zip(seq, [*seq[1:], tok.eos_token_id], strict=True):
                head[b, states.index(a)] = 100.0
        head[call[0], 0], head[answer[0], 0], head[call[0], flag] = 100.0, 50.0, -100.0
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return str(target)


@pytest.fixture(scope="module")
def tool_caller(tmp_path_factory) -> str:
    return make_tool_caller(tmp_path_factory.mktemp("tool-caller"))


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    """Synthetic problems with pictures and their dataset captions in the captions table."""
    from tasks.caption import dataset_captions

    data = raw_arm_data(tmp_path_factory.mktemp("tools_data"), 12)
    problems = read_table(data.table("problems"), "problems")
    write_table(dataset_captions(problems), data.table("captions") / "dataset" / "all.parquet", "captions")
    return data


def test_tools_student_calls_caption_and_the_caption_reaches_its_next_turn(tool_caller, image_data, monkeypatch):
    import students.generate
    from students.model import load_model, load_tokenizer
    from students.tools import tool_frame

    problems = read_table(image_data.table("problems"), "problems").filter(pl.col("image_sha").is_not_null()).head(2)
    captions = image_data.captions("dataset")
    model, tok = load_model(tool_caller), load_tokenizer(tool_caller)
    prompts = []  # the whole chats of each turn's prefill (which may run by groups of rows: students/prefill.py)
    prefill = students.generate.prefill
    monkeypatch.setattr(students.generate, "prefill",
                        lambda model, enc, *a, **k: prompts.append(enc["input_ids"].clone()) or prefill(model, enc, *a, **k))
    cfg = EvaluateConfig(tools=["caption", "lecture"], max_new_tokens=24, batch_size=2)
    info = dict(run="r", student="base", arm="base", method="none", seed=None, eval_fingerprint="f")
    df = tool_frame(model, tok, problems, captions, info, cfg, VerifyConfig())
    assert len(prompts) == 2  # two turns of the batch: the call, then the answer
    first, second = ([tok.decode(row, skip_special_tokens=True) for row in p] for p in prompts)
    for pid, one, two in zip(problems["problem_id"], first, second, strict=True):
        assert captions[pid] not in one and captions[pid] in two  # the factory's answer, in the next turn only
        offered = one.split("<tools>\n")[1].split("</tools>")[0]  # the tools listed in the first turn's system turn
        assert '"name": "caption"' in offered and '"name": "lecture"' in offered
        assert f"<tool_response>\n{captions[pid]}\n</tool_response>" in two  # as the tool's turn
        assert '<tool_call>\n{"name": "caption", "arguments": {}}\n</tool_call>' in two  # its call, as a turn
    assert df["tool_calls"].to_list() == [["caption"], ["caption"]] and df["response"].to_list() == [ANSWER] * 2
    gold_a = [p["answer_index"] == 0 if p["choices"] else False for p in problems.to_dicts()]
    assert df["correct"].to_list() == gold_a and set(df["variant"]) == {"tools"}
    assert (df["generated_tokens"] == len(chain(tok, CALL)) + 1 + len(chain(tok, ANSWER))).all()


def test_tools_calls_are_parsed_strictly_and_a_lecture_call_gets_the_lecture():
    from students.tools import parse_call, tool_reply

    names = ["caption", "lecture"]
    assert parse_call('Let me look. <tool_call>\n{"name": "lecture", "arguments": {}}\n</tool_call>', names) == (
        "Let me look.", "lecture")
    assert parse_call('<tool_call>{"name": "search"}</tool_call>', names) is None  # not offered
    assert parse_call("<tool_call>{name: caption}</tool_call>", names) is None  # not JSON
    assert parse_call("The answer is (B).", names) is None
    from students.model import load_tokenizer
    from students.tools import template_for

    tok = load_tokenizer("embedded")
    chat = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "caption", "arguments": {}}}]},
        {"role": "tool", "name": "caption", "content": "A red ball."}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True, **template_for(tok, names))
    assert text.endswith('</tool_call><|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n'
                         '<tool_call>\n{"name": "caption", "arguments": {}}\n</tool_call><|im_end|>\n<|im_start|>user\n'
                         '<tool_response>\nA red ball.\n</tool_response><|im_end|>\n<|im_start|>assistant\n')
    assert parse_call(text.split("<|im_start|>assistant\n")[1], names) == ("", "caption")  # its own call parses
    problem = {"problem_id": "p", "lecture": "Magnets attract iron."}
    assert tool_reply("lecture", problem, {}) == "Magnets attract iron."
    assert tool_reply("caption", problem, {}) == "This problem has no image."


def test_tools_evaluation_through_the_stage_writes_tools_rows_beside_plain_ones(tool_caller, image_data):
    """`evaluate.tools` on: the base student answers plain (caption in the prompt) and with tools; the tool
    loop stops after max_tool_calls (1 here) and the next turn is the answer."""
    from students.stages import run_evaluate

    cfg = FactoryConfig.model_validate({
        "data_dir": str(image_data.root), "run": "tools", "arms": {"arms": ["raw"]}, "train": {"model": tool_caller},
        "evaluate": {"max_new_tokens": 24, "batch_size": 8, "tools": ["caption", "lecture"], "max_tool_calls": 1}})
    assert run_evaluate(cfg, image_data, "base")["status"] == "evaluated"
    evals = read_table(image_data.evals("tools") / "base.parquet", "evals")
    plain, tools = (evals.filter(pl.col("variant") == v) for v in ("plain", "tools"))
    assert plain.height == tools.height > 0 and plain["tool_calls"].null_count() == plain.height
    assert tools["tool_calls"].to_list() == [["caption"]] * tools.height  # one call each, then the answer
    assert (tools["response"] == ANSWER).all() and (plain["response"].str.starts_with("<tool_call>")).all()
    assert run_evaluate(cfg, image_data, "base")["status"] == "reused"


def test_tools_old_evals_files_without_tool_calls_still_read(tmp_path):
    old = pl.DataFrame(schema={k: v for k, v in SCHEMAS["evals"].items() if k != "tool_calls"})
    old = pl.concat([old, pl.DataFrame([{"run": "r", "student": "s", "correct": True}], schema=old.schema)])
    old.write_parquet(tmp_path / "s.parquet")
    back = read_table(tmp_path / "s.parquet", "evals")
    assert back["tool_calls"].to_list() == [None] and back["correct"].to_list() == [True]
    pl.DataFrame({"run": ["r"]}).write_parquet(tmp_path / "bad.parquet")  # lacks more than the later column
    with pytest.raises(ValueError, match="do not match the evals schema"):
        read_table(tmp_path / "bad.parquet", "evals")


def planted_tools(rng, n: int = 60) -> pl.DataFrame:
    """Two students' tools answers on val and test with random calls and outcomes, a reference's plain
    answers, and plain answers of the students that the tool-use table must leave out."""
    from test_reports import evals

    frames = []
    for student, arm, method in (("base", "base", "none"), ("raw-lora", "raw", "lora")):
        for split in ("val", "test"):
            calls = [[str(t) for t in rng.choice(["caption", "lecture"], size=rng.integers(0, 3))] for _ in range(n)]
            correct = [bool(x) if rng.random() > 0.1 else None for x in rng.random(n) < 0.5]
            frames += [evals(student, arm, method, correct, split=split, variant="tools", tool_calls=calls),
                       evals(student, arm, method, [True] * n, split=split, variant="plain")]
    for split in ("val", "test"):
        frames.append(evals("reference:big", "reference", "zero-shot", list(rng.random(n) < 0.4), split=split,
                            variant="plain"))
    return pl.concat(frames)


def brute_force(rows: list[dict], student: str, split: str) -> dict:
    mine = [r for r in rows if r["student"] == student and r["split"] == split and r["variant"] == "tools"]
    used = [r for r in mine if r["tool_calls"]]
    unused = [r for r in mine if not r["tool_calls"]]
    ref = [r for r in rows if r["student"] == "reference:big" and r["split"] == split]

    def acc(rs):
        judged = [r["correct"] for r in rs if r["correct"] is not None]
        return sum(judged) / len(judged), len(judged)

    return dict(answers=len(mine), rate=(len(used) / len(mine), len(mine)), with_=acc(used), without=acc(unused),
                caption=sum("caption" in r["tool_calls"] for r in mine) / len(mine),
                lecture=sum("lecture" in r["tool_calls"] for r in mine) / len(mine),
                per_answer=sum(len(r["tool_calls"]) for r in mine) / len(mine), ref=acc(ref))


def test_tools_report_table_matches_a_brute_force_count(tmp_path):
    import numpy as np
    from test_reports import report

    ev = planted_tools(np.random.default_rng(3))
    text, summary = report(tmp_path, ev)
    rows, table = ev.to_dicts(), summary["tool_use"]
    assert {(r["student"], r["split"]) for r in table} == {(s, p) for s in ("base", "raw-lora") for p in ("val", "test")}
    for r in table:
        want = brute_force(rows, r["student"], r["split"])
        assert r["answers"] == want["answers"]
        assert (r["tool_call_rate"]["accuracy"], r["tool_call_rate"]["n"]) == pytest.approx(want["rate"])
        assert (r["with_tool_use"]["accuracy"], r["with_tool_use"]["n"]) == pytest.approx(want["with_"])
        assert (r["without_tool_use"]["accuracy"], r["without_tool_use"]["n"]) == pytest.approx(want["without"])
        assert (r["calls caption"], r["calls lecture"]) == pytest.approx((want["caption"], want["lecture"]))
        assert float(r["calls_per_answer"]) == pytest.approx(want["per_answer"], abs=0.005)
        ref = r["reference:big (zero-shot)"]
        assert (ref["accuracy"], ref["n"]) == pytest.approx(want["ref"])
    assert "## Tool use (evaluate.tools)" in text and "| student | split | answers | tool_call_rate |" in text


PLANTS = {"supported": ([True] * 40 + [False] * 20, [True] * 15 + [False] * 45),
          "contradicted": ([True] * 15 + [False] * 45, [True] * 40 + [False] * 20),
          "inconclusive": ([True, False] * 30, [False, True] * 30)}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_tools_h1_is_decided_on_val_and_follows_its_printed_test(tmp_path, plant):
    """The tools student against the reference: val decides (test planted the other way round)."""
    from test_reports import evals, report
    from test_verdicts import follows_printed_test, printed_rows

    student, ref = PLANTS[plant]
    calls = [["caption"]] * 60
    ev = pl.concat([evals("base", "base", "none", student, split="val", variant="tools", tool_calls=calls),
                    evals("reference:big", "reference", "zero-shot", ref, split="val", variant="plain"),
                    evals("base", "base", "none", ref, split="test", variant="tools", tool_calls=calls),
                    evals("reference:big", "reference", "zero-shot", student, split="test", variant="plain")])
    text, summary = report(tmp_path, ev)
    (h1,) = [r for r in summary["hypotheses"] if r["hypothesis"] == "H1"]
    assert (h1["treatment"], h1["control"], h1["n"], h1["verdict"]) == ("base (tools)", "reference:big", 60, plant)
    (printed,) = printed_rows(text, "H1")
    follows_printed_test(printed, 0.05)


def test_tools_h1_says_what_it_needs():
    from test_reports import evals

    from reports.verdicts import hypothesis_rows
    from schemas.config import ReportConfig

    tools = evals("base", "base", "none", [True] * 30, split="val", variant="tools", tool_calls=[[]] * 30)
    ref = evals("reference:big", "reference", "zero-shot", [False] * 30, split="val", variant="plain")

    def verdict(ev):
        return next(r["verdict"] for r in hypothesis_rows(ev, ["lora"], {}, ReportConfig()) if r["hypothesis"] == "H1")

    assert verdict(ref) == "not tested: needs evaluate.tools (students answering with the caption and lecture tools)"
    assert verdict(tools) == ("not tested: needs a zero-shot reference model evaluated on val (`reference:` in the "
                              "config)")
    assert verdict(pl.concat([tools, ref]).with_columns(split=pl.lit("test"))) == (
        "not tested: needs a val split (H1 is decided on val: evaluate.splits)")
    assert verdict(pl.concat([tools, ref])) == "supported"


def test_tools_config_needs_a_text_student_through_transformers():
    from pydantic import ValidationError

    assert FactoryConfig.from_yaml(ROOT / "configs" / "tools.yaml").evaluate.tools == ["caption", "lecture"]
    with pytest.raises(ValidationError, match="evaluate.tools: tool-calling answers come from text students"):
        FactoryConfig.model_validate({"train": {"student": "vlm"}, "evaluate": {"tools": ["caption"]}})
    with pytest.raises(ValidationError, match="unique|differ|twice|duplicate"):
        FactoryConfig.model_validate({"evaluate": {"tools": ["caption", "caption"]}})
    plain = FactoryConfig().evaluate
    assert "tools" not in plain.fingerprinted() and "tools" in plain.model_copy(update={"tools": ["lecture"]}).fingerprinted()
