"""The `distillery` command: the whole factory or one stage, without a Prefect server.

    distillery run --config configs/default.yaml --data-dir data
    distillery ingest --source scienceqa --path DIR
    distillery sample --config my.yaml
"""

import argparse
import json
import sys

from pydantic import ValidationError

from schemas.config import FactoryConfig

STAGE_NAMES = ["ingest", "caption", "sample", "verify", "select", "arms", "train", "evaluate", "report"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distillery", description="Teacher-to-student distillation data factory.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ["run", *STAGE_NAMES]:
        s = sub.add_parser(name, help="the whole factory" if name == "run" else f"the {name} stage alone")
        s.add_argument("--config", help="YAML file with a FactoryConfig (defaults when omitted)")
        s.add_argument("--data-dir", help="data directory (overrides data_dir in the config)")
        s.add_argument("--run-name", help="run name (overrides run in the config)")
        if name in ("ingest", "run"):
            s.add_argument("--source", choices=["synthetic", "scienceqa"], help="problem source")
            s.add_argument("--path", help="source path: a ScienceQA directory or saved dataset")
    return p


def load_config(args: argparse.Namespace) -> FactoryConfig:
    data = FactoryConfig.from_yaml(args.config).model_dump() if args.config else FactoryConfig().model_dump()
    if args.data_dir:
        data["data_dir"] = args.data_dir
    if args.run_name:
        data["run"] = args.run_name
    for key in ("source", "path"):
        if getattr(args, key, None):
            data["ingest"][key] = getattr(args, key)
    return FactoryConfig.model_validate(data)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args)
    except (ValidationError, ValueError, FileNotFoundError) as e:
        print(f"distillery: invalid configuration: {e}", file=sys.stderr)
        return 2
    from flows.factory import factory  # imported late: prefect is slow to import
    from flows.stages import STAGES

    result = factory(config=config) if args.command == "run" else STAGES[args.command](config=config)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
