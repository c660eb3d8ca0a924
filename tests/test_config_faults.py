"""Config values in the wrong shape, checked where the config is read (fast; the same cases run
through the CLI in tests/test_bad_input_faults.py)."""

import pytest
import yaml
from pydantic import ValidationError

from schemas.config import FactoryConfig, UniqueKeyLoader
from schemas.errors import validation_line


def line(data: dict) -> str:
    with pytest.raises(ValidationError) as e:
        FactoryConfig.model_validate(data)
    return validation_line(e.value)


def test_yaml_is_read_with_1_2_booleans_and_integers():
    got = yaml.load("a: yes\nb: 010\nc: true\nd: 0x1f\ne: 0o17\nf: off\ng: -3\nh: False", Loader=UniqueKeyLoader)
    assert got == {"a": "yes", "b": 10, "c": True, "d": 31, "e": 15, "f": "off", "g": -3, "h": False}
    assert yaml.safe_load("a: yes\nb: 010") == {"a": True, "b": 8}  # PyYAML's own loader is left as it was


def test_k_yes_is_an_error_saying_k_must_be_an_integer(tmp_path):
    (tmp_path / "c.yaml").write_text("sample: {k: yes, seed: 010}\n")
    with pytest.raises(ValidationError) as e:
        FactoryConfig.from_yaml(tmp_path / "c.yaml")
    assert "sample.k: Input should be a valid integer" in validation_line(e.value)
    (tmp_path / "c.yaml").write_text("sample: {k: 3, seed: 010}\n")
    assert FactoryConfig.from_yaml(tmp_path / "c.yaml").sample.seed == 10


@pytest.mark.parametrize("section,field,values", [
    ("sample", "variants", ["plain", "plain"]), ("sample", "splits", ["train", "val", "train"]),
    ("evaluate", "prompts", ["cot", "cot"]), ("arms", "arms", ["raw", "raw"]),
    ("train", "methods", ["lora", "lora"]), ("train", "seeds", [0, 0])])
def test_a_value_listed_twice_is_an_error_naming_it(section, field, values):
    said = line({section: {field: values}})
    assert f"{section}.{field}" in said and f"{values[-1]!r} is listed twice" in said


def test_paths_are_expanded_once_and_an_empty_one_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "r"))
    assert FactoryConfig.model_validate({"data_dir": "~/x"}).data_dir == str(tmp_path / "x")
    assert FactoryConfig.model_validate({"data_dir": "$DATA_ROOT/y"}).data_dir == str(tmp_path / "r" / "y")
    cfg = FactoryConfig.model_validate({"ingest": {"source": "files", "path": "~/in.jsonl", "images_dir": "~/im"}})
    assert cfg.ingest.path == str(tmp_path / "in.jsonl") and cfg.ingest.images_dir == str(tmp_path / "im")
    assert "empty path" in line({"data_dir": ""})
    monkeypatch.delenv("NOT_THERE_X", raising=False)
    assert "NOT_THERE_X, which is not set" in line({"data_dir": "$NOT_THERE_X/z"})


def test_messages_that_help():
    assert FactoryConfig.model_validate({"ingest": {"n_problems": 40}}).ingest.source == "synthetic"
    assert "quote it, '2024'" in line({"run": 2024})
    assert "http://127.0.0.1:8000/v1" in line({"sample": {"endpoint": {"base_urls": ["127.0.0.1:8000/v1"]}}})
    many = line({f"key{i}": i for i in range(5000)})
    assert many.count("Extra inputs are not permitted") == 20 and many.endswith("and 4980 more errors")
    assert len(many) < 2000
