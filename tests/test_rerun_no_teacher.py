"""Re-running verify, select, arms and export never calls a teacher: the endpoint configured for them
fails every request, and its own request count stays at zero."""

import pytest
import yaml
from e2e import prefect_env, run_cli
from fake_servers import FakeServer

from schemas.config import FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from students.backends import close_backends
from students.runner import run_shard
from tasks.ingest import ingest


@pytest.mark.slow
def test_verify_select_arms_export_ask_no_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123456789")
    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=20), data)
    cfg = {"data_dir": str(data.root), "sample": {"teacher": "openai", "model": "fake", "k": 2}}
    with FakeServer("openai") as good:  # the samples, paid for once
        cfg["sample"]["endpoint"] = {"base_urls": [good.url]}
        config = FactoryConfig.model_validate(cfg)
        for shard in data.shards():
            run_shard("caption", config, data, shard)
            run_shard("sample", config, data, shard)
        close_backends()
    with FakeServer("openai", fail_all=True) as broken:
        cfg["sample"]["endpoint"] = {"base_urls": [broken.url], "max_attempts": 1}
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = prefect_env(tmp_path / "prefect")
        outs = {stage: run_cli([stage, "--config", str(path)], env)[0] for stage in ("verify", "select", "arms", "export")}
    assert sum(broken.statuses.values()) == 0 and not broken.attempts  # not one request reached it
    assert outs["verify"]["verdicts"] == sum(good.statuses.values()) * 2 and outs["select"]["selected"] > 0
    assert outs["arms"]["rows"]["raw"] > 0 and outs["export"] == outs["arms"]["rows"]
    assert (data.table("exports") / "teacher_cot" / "hf" / "dataset_info.json").is_file()
