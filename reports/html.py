"""report.html: the markdown report as one self-contained page, its plots embedded as data URIs."""

import base64
from pathlib import Path

import markdown

from reports.render import render
from schemas import atomic

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def write_html(path: Path, summary: dict, plots: dict[str, str]) -> Path:
    text = render(summary, {})  # plots are placed below, embedded
    body = markdown.markdown(text, extensions=["tables"])
    images = []
    for name, file in plots.items():
        data = base64.b64encode((Path(path).parent / file).read_bytes()).decode()
        images.append(f'<h3>{name.replace("_", " ")}</h3><img alt="{name}" src="data:image/png;base64,{data}">')
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>distillery report: '
            f'{summary["run"]}</title><style>{STYLE}</style></head><body>{body}'
            + (f"<h2>Plots</h2>{''.join(images)}" if images else "") + "</body></html>")
    atomic.write_text(Path(path), html)
    return Path(path)
