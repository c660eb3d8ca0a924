"""`gemini` and `openai` captioners over real HTTP to local servers: images inline, one request
per distinct image, cached by (image hash, captioner, prompt)."""

import hashlib
import io

import polars as pl
import pytest
from fake_servers import FakeServer
from PIL import Image
from test_remote_teachers import problems

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import close_backends
from students.runner import run_shard


@pytest.fixture(autouse=True)
def api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-1234567")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-key-1234567")


def image(data: DataDir, colour) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    data.image(sha).parent.mkdir(parents=True, exist_ok=True)
    data.image(sha).write_bytes(buf.getvalue())
    return sha


@pytest.mark.parametrize("kind", ["gemini", "openai"])
def test_model_captions_cached_per_image_and_prompt(tmp_path, kind):
    data = DataDir(tmp_path / "data")
    red, blue = image(data, (200, 0, 0)), image(data, (0, 0, 200))
    probs = pl.concat([problems(["a", "b"], image_sha=red), problems(["c"], image_sha=blue),
                       problems(["d"], image_sha=None)]).with_columns(problem_id=pl.Series([f"p{i}" for i in range(4)]))
    write_table(probs, data.table("problems") / "test" / "test-00000.parquet", "problems")
    with FakeServer(kind) as server:
        cfg = FactoryConfig.model_validate({"caption": {"captioner": kind, "model": "vision-model",
                                                        "endpoint": {"base_urls": [server.url]}}})
        for _ in range(2):  # the second run asks for nothing
            stats = run_shard("caption", cfg, data, "test/test-00000")
            close_backends()
        cfg.caption.prompt = "Describe the image briefly."
        run_shard("caption", cfg, data, "test/test-00000")
        close_backends()
    assert sorted(server.images) == sorted([red, blue, red, blue])  # 2 images x 2 prompts; shared image once
    assert stats.cached == 2 and stats.new == 0  # one request per distinct image
    caps = pl.read_parquet(data.table("captions") / kind / "test" / "test-00000.parquet")
    assert caps.schema == pl.Schema(SCHEMAS["captions"])
    assert sorted(caps["problem_id"]) == ["p0", "p1", "p2"] and (caps["caption"].str.len_chars() > 0).all()
    assert caps.filter(pl.col("problem_id") == "p0")["caption"].item() == caps.filter(pl.col("problem_id") == "p1")["caption"].item()
