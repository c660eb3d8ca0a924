"""students/backends.py: identity and price read from the config section alone agree with the backend
object's own, for every backend; a shard stage builds its backend once per process, not per shard."""

import polars as pl
import pytest
from fake_servers import FakeServer

from schemas.config import CaptionConfig, ExtractorConfig, FactoryConfig, SampleConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import close_backends, identity, price, teacher_for
from students.runner import run_shard
from students.train import write_meta
from tasks.teachers.openai_compat import OpenAITeacher
from teacher_cache.prices import price_for


def student_dir(tmp_path) -> str:
    out = tmp_path / "students" / "r1" / "cot-lora"
    write_meta(out, {"status": "trained", "base_model": "gpt-4o-mini", "fingerprint": "0123456789abcdef",
                     "student_kind": "causal_lm"})
    return str(out)


SECTIONS = {
    "local": lambda tmp: SampleConfig(),
    "openai": lambda tmp: SampleConfig(teacher="openai", model="gpt-4o"),
    "openai, own identity": lambda tmp: SampleConfig(teacher="openai", model="m", endpoint={"identity": "lab/m"}),
    "openai batch": lambda tmp: SampleConfig(teacher="openai", model="gpt-4o-mini", batch=True, batch_price=0.4),
    "gemini": lambda tmp: SampleConfig(teacher="gemini", model="gemini-2.5-flash"),
    "vllm": lambda tmp: SampleConfig(teacher="vllm", model="Qwen/Qwen3-8B", endpoint={"identity": "vllm/q"}),
    "student": lambda tmp: SampleConfig(teacher="student", model=student_dir(tmp)),
    "caption": lambda tmp: CaptionConfig(captioner="openai", model="gpt-4.1-mini"),
    "local judge": lambda tmp: ExtractorConfig(teacher="local", model="embedded", endpoint={"identity": "x"}),
}


@pytest.mark.parametrize("name", SECTIONS)
def test_identity_and_price_from_the_config_are_the_backends_own(tmp_path, name):
    section, cfg = SECTIONS[name](tmp_path), FactoryConfig(prices={"Qwen/Qwen3-8B": {"input_per_mtok": 1.0,
                                                                                     "output_per_mtok": 2.0}})
    backend = teacher_for(section)  # the reference: what the object built for the stage says
    assert identity(section) == backend.identity
    listed = price_for(backend.backend, backend.model, cfg.prices)
    share = section.batch_price if getattr(section, "batch", False) else 1.0
    got = price(section, cfg)
    assert (got is None) == (listed is None)
    if listed is not None:
        assert got.input_per_mtok == pytest.approx(listed.input_per_mtok * share)
        assert got.output_per_mtok == pytest.approx(listed.output_per_mtok * share)


def test_a_stage_builds_its_backend_once_per_process_however_many_shards(tmp_path, monkeypatch):
    data = DataDir(tmp_path / "data")
    for s in range(3):
        rows = [dict(problem_id=f"p{s}-{i}", source="test", source_id=f"{s}-{i}", split="train", question=f"q{s}{i}",
                     choices=["red", "blue"], answer="red", answer_index=0, answer_type="multiple_choice", hint="",
                     lecture="", solution="", caption=None, image_sha=None, subject="s", topic="t", category="c",
                     grade="g") for i in range(2)]
        write_table(pl.DataFrame(rows, schema=SCHEMAS["problems"]), data.table("problems") / "t" / f"t-{s}.parquet",
                    "problems")
    built, init = [], OpenAITeacher.__init__
    monkeypatch.setattr(OpenAITeacher, "__init__", lambda self, *a: built.append(a) or init(self, *a))  # any caller
    monkeypatch.setenv("OPENAI_API_KEY", "sk-once-0123456789")
    with FakeServer("openai") as server:
        cfg = FactoryConfig.model_validate({"data_dir": str(data.root), "sample": {
            "teacher": "openai", "model": "fake", "k": 1, "variants": ["plain"], "endpoint": {"base_urls": [server.url]}}})
        try:
            results = [run_shard("sample", cfg, data, shard) for shard in data.shards()]
        finally:
            close_backends()
    assert len(built) == 1 and sum(r.new for r in results) == len(server.times) * 1 > 0


def test_a_stage_closes_only_its_own_backends(tmp_path, monkeypatch):
    """Two stages (two flow runs on one dask worker, say) open the same section under their own scopes:
    closing one leaves the other's backend open."""
    from students.backends import SHARED, shared
    from students.teachers import LocalTeacher

    closed, close = [], LocalTeacher.close
    monkeypatch.setattr(LocalTeacher, "close", lambda self: closed.append(self) or close(self))
    cfg, data = FactoryConfig(data_dir=str(tmp_path)), DataDir(tmp_path)
    section = SampleConfig(model="embedded")  # built, never loaded: nothing is asked
    try:
        first, second = shared(section, cfg, data, "sample-a"), shared(section, cfg, data, "sample-b")
        assert first is not second and shared(section, cfg, data, "sample-a") is first  # once per scope
        close_backends("sample-a")
        assert [k[0] for k in SHARED] == ["sample-b"] and closed == [first.teacher]
    finally:
        close_backends()
    assert not SHARED and closed == [first.teacher, second.teacher]


def test_llama_cpp_is_only_for_a_gguf_on_the_local_teacher():
    with pytest.raises(ValueError, match="llama_cpp runs a GGUF on the local teacher"):
        SampleConfig(engine="llama_cpp", model="/models/a-directory")
    assert SampleConfig(engine="llama_cpp", model="/models/x.Q8_0.gguf").engine == "llama_cpp"
