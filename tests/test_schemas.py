"""FactoryConfig from YAML, table schemas and atomic writes."""

from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from schemas.config import CaptionConfig, FactoryConfig, SyntheticIngest
from schemas.tables import SCHEMAS, read_table, write_table
from tasks.caption import caption_shard

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_default_config_file_loads_and_matches_defaults():
    cfg = FactoryConfig.from_yaml(ROOT / "configs" / "default.yaml")
    assert cfg.sample.teacher == "local" and cfg.train.model == "embedded"
    assert cfg.ingest.n_problems == FactoryConfig().ingest.n_problems


def test_ingest_without_a_source_is_synthetic_and_a_wrong_source_names_them(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("ingest: {n_problems: 5}\n")
    cfg = FactoryConfig.from_yaml(f)
    assert isinstance(cfg.ingest, SyntheticIngest) and cfg.ingest.n_problems == 5
    f.write_text("ingest: {source: scienceqaa, n_problems: 5}\n")
    with pytest.raises(ValidationError) as e:
        FactoryConfig.from_yaml(f)
    assert all(f"'{name}'" in str(e.value) for name in ("synthetic", "scienceqa", "hf", "files", "mathvista", "cvbench"))


@pytest.mark.parametrize("yaml_text,match", [
    ("sample: {kk: 3}", "kk"),
    ("samples: {k: 3}", "samples"),
    ("sample: {k: 0}", "greater than or equal"),
    ("arms: {arms: [raw, nonsense]}", "nonsense"),
    ("- just a list", "mapping"),
])
def test_bad_config_is_a_clear_error(tmp_path, yaml_text, match):
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises((ValidationError, ValueError), match=match):
        FactoryConfig.from_yaml(f)


def test_write_table_conforms_and_rejects_missing_columns(tmp_path):
    df = pl.DataFrame({"stage": ["ingest"], "source": ["s"], "source_id": ["1"], "reason": ["r"], "detail": ["d"],
                       "extra": [1]})
    path = write_table(df, tmp_path / "rejects" / "x.parquet", "rejects")
    assert pl.read_parquet(path).columns == list(SCHEMAS["rejects"])  # extra column dropped
    assert not list((tmp_path / "rejects").glob(".*"))  # no temp file left behind
    with pytest.raises(ValueError, match="missing columns"):
        write_table(df.drop("reason"), tmp_path / "rejects" / "y.parquet", "rejects")
    assert read_table(tmp_path / "nothing", "rejects").schema == pl.Schema(SCHEMAS["rejects"])


def test_dataset_captioner_keeps_only_real_captions():
    problems = pl.DataFrame({"problem_id": ["a", "b", "c"], "image_sha": ["x", None, "y"],
                             "caption": ["A red ball.", None, "  "]})
    assert caption_shard(CaptionConfig(captioner="dataset"), problems)[0]["problem_id"].to_list() == ["a"]
    assert caption_shard(CaptionConfig(captioner="none"), problems)[0].height == 0
    with pytest.raises(ValueError, match="needs an opened backend"):
        caption_shard(CaptionConfig(captioner="gemini"), problems)
    with pytest.raises(ValidationError):
        CaptionConfig(captioner="gpt")


def test_every_shipped_config_loads():
    from pathlib import Path

    from schemas.config import FactoryConfig

    files = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(files) >= 5
    teachers = {FactoryConfig.from_yaml(f).sample.teacher for f in files}
    assert teachers == {"local", "openai", "gemini", "vllm"}


def test_every_field_of_every_flow_form_is_described_in_plain_text():
    """The Prefect UI renders each flow's parameter schema as a form; every field needs a description,
    and the UI would strip anything that looks like an HTML tag (`students/<run>` showed as `students/`)."""
    import re

    from flows.factory import distill, factory
    from flows.stages import STAGES, import_traces_flow

    for flow in [factory, distill, import_traces_flow, *STAGES.values()]:
        schema = flow.parameters.model_dump(by_alias=True)
        objects = [schema, *schema.get("definitions", {}).values()]
        for obj in objects:
            for name, prop in obj.get("properties", {}).items():
                where = f"{flow.name}: {obj.get('title', 'parameters')}.{name}"
                assert prop.get("description"), f"{where} has no description"
                assert not re.search(r"<[^>]*>", prop["description"]), f"{where}: {prop['description']!r}"


@pytest.mark.parametrize("data, match", [
    ({"report": {"best_arm": "teacher_cot"}, "arms": {"arms": ["raw"]}}, "best_arm"),
    ({"reference": [{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]}, "reference names"),
    ({"report": {"hypotheses": [{"id": "H", "claim": "c", "treatment": "raw", "control": "nonsense",
                                 "direction": "lower"}]}}, "nonsense"),
    ({"report": {"hypotheses": [{"id": "H", "claim": "c", "treatment": "raw", "control": "answer_only",
                                 "direction": "down"}]}}, "lower"),
])
def test_experiment_names_are_checked_before_a_run(data, match):
    with pytest.raises((ValidationError, ValueError), match=match):
        FactoryConfig.model_validate(data)


def test_readme_arms_and_hypotheses_tables_match_the_declaration():
    """The README's tables are read from schemas/experiment.py: every arm and hypothesis, as declared."""
    from schemas.experiment import ARMS, HYPOTHESES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for arm in ARMS:
        assert f"| `{arm.name}` | {arm.completion} | {arm.prompt_variant} |" in readme, arm.name
    for h in HYPOTHESES:
        assert f"| {h.id} | `{h.treatment}` | `{h.control}` | {h.direction} | {h.claim} |" in readme, h.id
