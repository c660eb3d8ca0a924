"""export: each arm in the layouts other trainers read, with a dataset card.

    data/exports/<arm>/hf/           datasets.save_to_disk: prompt, completion, images (embedded)
    data/exports/<arm>/trl.parquet   the same rows as parquet (trl conversational prompt/completion)
    data/exports/<arm>/sharegpt/     LLaMA-Factory: data.json, dataset_info.json, images/<sha>.png
    data/exports/<arm>/README.md     dataset card: what the arm is, counts, pass@k, costs, config

An arm's export directory is built beside it under a hidden temporary name and swapped in with
one rename, so a failed or killed export leaves the previous one intact; the next export removes
a killed one's temporary.
"""

import json
import os
import shutil
from pathlib import Path

import polars as pl
import yaml

from schemas.atomic import replace_dir, temp_path
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.experiment import ARM, HYPOTHESES
from schemas.paths import DataDir
from schemas.tables import read_table, swept
from tasks.arms import arm_unavailable, source_variant
from tasks.decontam import left_out
from tasks.select import pass_rates
from tasks.teachers.secrets import api_key

SHAREGPT_INFO = {  # LLaMA-Factory data/README.md, "Sharegpt Format" + multimodal `images` column
    "file_name": "data.json", "formatting": "sharegpt",
    "columns": {"messages": "conversations", "images": "images"},
}


def teacher_spend(samples: pl.DataFrame, teacher: str, arm: str) -> tuple[int, float | None]:
    """(tokens in + out, USD or None when unpriced) the teacher spent on every variant the arm reads,
    all k paths counted; (0, 0.0) for arms built from the dataset alone."""
    if not ARM[arm].variants:
        return 0, 0.0
    own = samples.filter((pl.col("teacher") == teacher) & pl.col("variant").is_in(ARM[arm].variants))
    tokens = int((own["prompt_tokens"].fill_null(0) + own["completion_tokens"].fill_null(0)).sum())
    return tokens, None if own["cost_usd"].null_count() else float(own["cost_usd"].sum())


def sharegpt_rows(arm_df: pl.DataFrame) -> list[dict]:
    """LLaMA-Factory sharegpt records: human then gpt turns; an `<image>` tag per image."""
    out = []
    for r in arm_df.iter_rows(named=True):
        images = [f"images/{r['image_sha']}.png"] if r["image_sha"] else []
        human = "".join("<image>" for _ in images) + r["prompt"][-1]["content"]
        out.append({"conversations": [{"from": "human", "value": human},
                                      {"from": "gpt", "value": r["completion"][-1]["content"]}],
                    "images": images})
    return out


def write_sharegpt(arm: str, arm_df: pl.DataFrame, data: DataDir, out: Path) -> None:
    out.mkdir(parents=True)
    for sha in arm_df["image_sha"].drop_nulls().unique():
        (out / "images").mkdir(exist_ok=True)
        link_or_copy(data.image(sha), out / "images" / f"{sha}.png")
    (out / "data.json").write_text(json.dumps(sharegpt_rows(arm_df), ensure_ascii=False, indent=1))
    (out / "dataset_info.json").write_text(json.dumps({f"distillery_{arm}": SHAREGPT_INFO}, indent=2))


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where the filesystem allows (images are immutable, content-addressed), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def hf_dataset(arm_df: pl.DataFrame, data: DataDir):
    """The arm as a `datasets.Dataset`, images embedded as PNG bytes so the export stands alone."""
    import datasets  # slow to import: only when exporting

    message = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]
    features = datasets.Features({
        "problem_id": datasets.Value("string"), "sample_id": datasets.Value("string"),
        "variant": datasets.Value("string"), "prompt": message, "completion": message,
        "images": datasets.Sequence(datasets.Image()),
    })
    columns = {c: arm_df[c].to_list() for c in ("problem_id", "sample_id", "variant", "prompt", "completion")}
    columns["images"] = [[{"bytes": data.image(sha).read_bytes(), "path": f"{sha}.png"}] if sha else []
                         for sha in arm_df["image_sha"]]
    return datasets.Dataset.from_dict(columns, features=features, split=datasets.Split.TRAIN)


def roles(arm: str) -> list[str]:
    """The hypotheses the arm takes part in, as card lines."""
    lines = [f"- {h.id} ({'treatment' if h.treatment == arm else 'control'}, predicted {h.direction}): {h.claim}"
             for h in HYPOTHESES if arm in (h.treatment, h.control)]
    return ["## Hypotheses", "", *lines, ""] if lines else []


def card(cfg: FactoryConfig, arm: str, arm_df: pl.DataFrame, teacher: str, tables: dict[str, pl.DataFrame]) -> str:
    """The dataset card: YAML header for the hub, then what the arm is and what it cost."""
    variant = source_variant(arm)
    tokens, usd = teacher_spend(tables["samples"], teacher, arm)
    flags = tables["contamination"]
    header = {"pretty_name": f"distillery {arm}", "task_categories": ["question-answering"],
              "tags": ["distillation", "reasoning", "distillery"]}
    if "trl" in cfg.export.formats:  # the folder uploaded as is loads with `load_dataset(repo)`
        header["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": "trl.parquet"}]}]
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
        f"# distillery arm `{arm}`", "", f"Each example's completion is {ARM[arm].completion}; the student sees "
        f"the `{ARM[arm].prompt_variant}` prompt.", "", *roles(arm),
        "## Counts", "",
        f"- examples: {arm_df.height} from {arm_df['problem_id'].n_unique()} training problems",
        f"- with an image: {arm_df['image_sha'].is_not_null().sum()}",
        f"- training problems left out as copies of val/test problems: "
        f"{left_out(cfg, flags).len()} (flagged: {flags['problem_id'].n_unique()})", "",
        "## Teacher", "",
    ]
    if variant is None:
        lines += ["Built from the dataset alone: no teacher samples, no teacher cost.", ""]
    else:
        rates = pass_rates(tables["selected"]).filter((pl.col("teacher") == teacher) & (pl.col("variant") == variant))
        r = rates.row(0, named=True) if rates.height else dict(problems=0, solved=0, k=0, pass_at_1=0.0, pass_at_k=0.0)
        lines += [
            f"- teacher: `{teacher}`, prompt variant `{variant}`, selection policy `{cfg.select.policy}`",
            f"- problems sampled: {r['problems']}; with a correct sample: {r['solved']}",
            f"- pass@1 {r['pass_at_1']:.3f}, pass@k {r['pass_at_k']:.3f} "
            f"(k = {r['k']} samples per problem; unbiased estimator)",
            f"- teacher tokens (in + out, all samples): {tokens}; cost: "
            + (f"${usd:.4f}" if usd is not None else "unknown (no price for the model)"), "",
        ]
    lines += ["## Files", "", "- `hf/`: `datasets.load_from_disk`; `trl.parquet`: trl conversational "
              "prompt/completion; `sharegpt/`: LLaMA-Factory (`dataset_dir` = that folder).", "",
              "## Factory configuration", "", "```yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False).strip(),
              "```", ""]
    return "\n".join(lines)


def export_arm(cfg: FactoryConfig, data: DataDir, arm: str, teacher: str, tables: dict[str, pl.DataFrame],
               hub_token: str | None = None) -> int:
    """Writes data/exports/<arm>/ in the configured formats, then (when `export.push_to_hub` is
    set) pushes the arm to the hub as config `<arm>` with its card as `cards/<arm>.md`; the
    local export is complete before anything is sent. Returns the rows exported."""
    arm_df = pl.read_parquet(arm_file(data, arm))
    push = cfg.export.push_to_hub
    ds = hf_dataset(arm_df, data) if {"hf", "trl"} & set(cfg.export.formats) or push else None
    text = card(cfg, arm, arm_df, teacher, tables)
    final = data.table("exports") / arm
    final.parent.mkdir(parents=True, exist_ok=True)
    swept(final.parent)  # a killed export's half-built directory
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        if "hf" in cfg.export.formats:
            ds.save_to_disk(str(tmp / "hf"))
        if "trl" in cfg.export.formats:  # no half-written *.parquet ever exists, even in the temporary
            ds.to_parquet(str(tmp / "trl.parquet.part"))
            (tmp / "trl.parquet.part").rename(tmp / "trl.parquet")
        if "sharegpt" in cfg.export.formats:
            write_sharegpt(arm, arm_df, data, tmp / "sharegpt")
        (tmp / "README.md").write_text(text)
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if push:
        push_arm(ds, text, push, arm, cfg.export.private, hub_token)
    return arm_df.height


def push_arm(ds, card_text: str, repo: str, arm: str, private: bool, token: str) -> None:
    from huggingface_hub import HfApi

    ds.push_to_hub(repo, config_name=arm, split="train", private=private, token=token)
    HfApi(token=token).upload_file(path_or_fileobj=card_text.encode(), path_in_repo=f"cards/{arm}.md", repo_id=repo,
                                   repo_type="dataset", commit_message=f"distillery card for arm {arm}")


def arm_file(data: DataDir, arm: str) -> Path:
    path = data.arm(arm) / "train.parquet"
    if not path.exists():
        raise InputError(f"{path} is missing: run `distillery arms` first")
    return path


def hub_token(cfg: FactoryConfig) -> str | None:
    """The Hugging Face token `export.push_to_hub` needs, or None when nothing is pushed."""
    if not cfg.export.push_to_hub:
        return None
    token = api_key(cfg.export.token_secret, cfg.export.token_env)
    if not token:
        raise InputError(f"export.push_to_hub is {cfg.export.push_to_hub!r} but there is no token: set "
                         f"{cfg.export.token_env} or export.token_secret")
    return token


def run_export(cfg: FactoryConfig, data: DataDir, teacher: str) -> dict[str, int]:
    """Exports every configured arm (data/exports/<arm>/) built from teacher `teacher` (the arms
    teacher); returns rows per arm."""
    token = hub_token(cfg)  # before any work: a push that cannot happen fails first
    tables = {t: read_table(data.table(t), t) for t in ("samples", "selected", "contamination")}
    return {arm: export_arm(cfg, data, arm, teacher, tables, token) for arm in cfg.arms.arms
            if not arm_unavailable(cfg, arm)}
