"""`FactoryConfig`, the whole config with a section per stage, the runner section, and the YAML
loader it reads files with."""

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from schemas.config.backends import CaptionConfig, ModelPrice, ReferenceConfig
from schemas.config.base import PathSetting, SafeName, Section
from schemas.config.data import ArmsConfig, ExportConfig, SampleConfig, SelectConfig, VerifyConfig
from schemas.config.ingest import IngestConfig, SyntheticIngest
from schemas.config.report import ReportConfig
from schemas.config.students import DeployConfig, EvaluateConfig, TrainConfig


class RunnerConfig(Section):
    """Where the shard tasks of the data stages (caption, sample, verify, select) run."""

    kind: Literal["threads", "dask", "ray"] = Field(
        "threads", description="`threads`: this process; `dask`: a Dask cluster (prefect-dask); `ray`: a Ray "
        "cluster (prefect-ray). Each worker opens its own teacher; the cache is shared and safe across processes.")
    workers: int = Field(2, ge=1, description="dask / ray: worker processes started on this machine when no address "
                         "is given; with an address, the workers that share the teachers' limits.")
    address: str | None = Field(None, description="dask: a running scheduler (tcp://host:8786); ray: a running "
                                "cluster (auto, or ray://host:10001). Default: a local cluster for the stage.")

    def shares(self) -> int:
        """How many workers split each endpoint's limits (rpm, tpm, concurrency)."""
        return 1 if self.kind == "threads" else self.workers


class FactoryConfig(Section):
    run: SafeName = Field("default", description="Run name: trained students go "
                     "to students/RUN and the report to reports/RUN in the data directory.")
    data_dir: PathSetting = Field(
        "data", description="Root of the data directory (`~` and $VARIABLES are expanded). A relative path is taken from the working directory of the "
        "process that runs the flow: where `distillery` was started or, for a deployment, where `prefect deploy` ran.")
    ingest: IngestConfig = Field(SyntheticIngest(), description="Where the problems come from.")
    caption: CaptionConfig = Field(CaptionConfig(), description="How images are described for text-only teachers.")
    sample: SampleConfig = Field(SampleConfig(), description="The teacher and how its reasoning paths are sampled.")
    verify: VerifyConfig = Field(VerifyConfig(), description="How final answers are graded.")
    select: SelectConfig = Field(SelectConfig(), description="Which correct traces are kept.")
    arms: ArmsConfig = Field(ArmsConfig(), description="The student training sets.")
    export: ExportConfig = Field(ExportConfig(), description="Dataset exports of the arms.")
    train: TrainConfig = Field(TrainConfig(), description="Student training.")
    evaluate: EvaluateConfig = Field(EvaluateConfig(), description="Student evaluation.")
    report: ReportConfig = Field(ReportConfig(), description="Report statistics and hypotheses.")
    reference: list[ReferenceConfig] = Field(
        [], description="Models evaluated zero-shot beside the students (H3.6), e.g. a larger science model.")
    prices: dict[str, ModelPrice] = Field(
        {}, description="USD per million tokens by model name; adds to and overrides the shipped table."
    )
    runner: RunnerConfig = Field(RunnerConfig(), description="Where the data stages' shard tasks run.")
    deploy: DeployConfig = Field(DeployConfig(), description="Merged, quantized and measured students (off by default).")
    rounds: int = Field(1, ge=1, le=20, description="`distill` flow: rounds of sample -> train -> evaluate; round r's "
                        "best student is round r+1's teacher (runs RUN-r1, RUN-r2, ... when more than one).")

    @model_validator(mode="after")
    def _names_agree(self) -> "FactoryConfig":
        """Cross-field rules a form cannot express, checked before a run spends anything."""
        if self.train.init != "base" and (self.train.init not in {f"{a}-lora" for a in self.arms.arms}
                                          or "lora" not in self.train.methods):
            raise ValueError(f"train.init {self.train.init!r} is neither `base` nor a lora student this run trains "
                             f"(ARM-lora, with lora in train.methods)")
        if self.runner.kind != "threads" and "vllm" in (self.sample.teacher, self.caption.captioner):
            raise ValueError(f"runner {self.runner.kind}: the vllm backend starts `vllm serve` inside the stage; "
                             "with workers, serve it once and name it as an openai teacher with endpoint.base_urls")
        capped = [s for s in self.backends() if getattr(getattr(s, "endpoint", None), "budget_usd", None)]
        if capped and self.runner.kind == "ray":
            raise ValueError("endpoint.budget_usd under runner ray: a ray worker opens its backends for each shard "
                             "task, so a cap would restart with every shard; use runner threads or dask")
        if self.sample.teacher in ("local", "student") and self.sample.endpoint.budget_usd:
            raise ValueError(f"sample.endpoint.budget_usd: the {self.sample.teacher} teacher runs in this process "
                             "and costs no money per token; the cap is for remote teachers")
        if self.evaluate.tools and (self.train.student != "causal_lm" or self.evaluate.engine != "transformers"):
            raise ValueError("evaluate.tools: tool-calling answers come from text students through transformers "
                             f"(train.student causal_lm, evaluate.engine transformers), not {self.train.student!r} "
                             f"through {self.evaluate.engine!r}")
        if self.report.best_arm and self.report.best_arm not in self.arms.arms:
            raise ValueError(f"report.best_arm {self.report.best_arm!r} is not one of arms.arms {self.arms.arms}")
        names = [r.name for r in self.reference]
        if len(names) != len(set(names)):
            raise ValueError(f"reference names must differ: {names}")
        ids = [h.id for h in self.report.hypotheses]
        if len(ids) != len(set(ids)):
            raise ValueError(f"report.hypotheses ids must differ: {ids}")
        return self

    def backends(self) -> list:
        """Every section that names a model behind a backend: caption, sample, the judges, the references."""
        return [self.caption, self.sample, self.verify.judge, self.evaluate.judge, *self.reference]

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FactoryConfig":
        """A YAML file's config; a file that cannot be read or parsed is a ValueError naming it."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a YAML config file")
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ValueError(f"{path}: not valid YAML: {getattr(e, 'problem', None) or str(e).splitlines()[0]}{where}"
                             ) from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a text file (not UTF-8)") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(data)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently),
    and reads booleans and integers as YAML 1.2 does: only true / false are booleans (`k: yes` is the
    string "yes", an error where a number belongs) and 010 is ten (YAML 1.1 read it as octal 8)."""

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers
                                       if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml12_int(loader: yaml.SafeLoader, node) -> int:
    value = loader.construct_scalar(node)
    return int(value, 0) if re.match(r"^[-+]?0[xo]", value) else int(value, 10)


UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                      list("tTfF"))
UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                      list("-+0123456789"))
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", yaml12_int)
