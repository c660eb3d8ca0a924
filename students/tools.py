"""Tool-calling students (`evaluate.tools: [caption, lecture]`, the research plan's hypothesis 1): the
student's chat offers two tools, `caption` (the picture described: its caption from the captions table)
and `lecture` (the problem's lecture: the plan's retrieval stand-in), and the prompt carries neither.
When an answer calls one, `<tool_call>{"name": "caption", "arguments": {}}</tool_call>` (the Hermes / Qwen
format), the factory answers from the data as a tool turn and the student goes on, up to
`evaluate.max_tool_calls` calls; the last turn is the answer, graded by `grade_all` like any other.
Its rows are evals rows of variant `tools`, with the tools called in `tool_calls`.

A tokenizer whose chat template renders `tools` (Qwen2.5, Llama 3.1, SmolLM3) is used as it is; one that
ignores them (the embedded SmolLM2-135M's GGUF template is plain ChatML) gets `TOOL_TEMPLATE`: ChatML
with the tools listed in the system turn and tool turns as `<tool_response>` user turns.
"""

import json
import re
import time
from dataclasses import dataclass, field

import polars as pl

from schemas.config import EvaluateConfig, VerifyConfig
from schemas.progress import Progress
from students.evals import eval_frame
from students.generate import Generated, generate
from tasks.prompts import user_message

TOOLS = "tools"  # the evals `variant` of answers given with the tools offered
SPECS = {
    "caption": "A description of the problem's image in words (there is none when the problem has no image).",
    "lecture": "Background knowledge for the question: a short lecture on the principle it tests.",
}
CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.S)  # the JSON may nest braces
# ChatML with the tools in the system turn and calls and responses as Qwen2.5's template writes them; every
# newline is inside an expression, since transformers renders with trim_blocks (a newline right after a block
# tag is dropped)
TOOL_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant. You may call one or more functions to assist with the user "
    "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{% for t in tools %}{{ '\n' + (t | tojson) }}{% endfor %}{{ '\n' }}</tools>\n\nFor each function call, return "
    "a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>{{ '\n' }}"
    "{% for m in messages %}{% if m.role == 'tool' %}"
    "{{ '<|im_start|>user\n<tool_response>\n' + m.content + '\n</tool_response><|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m.role + ('\n' + m.content if m.content else '') }}{% for c in m.tool_calls or [] %}"
    "{{ '\n<tool_call>\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' + (c.function.arguments | tojson)"
    " + '}\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def tool_specs(names: list[str]) -> list[dict]:
    """The offered tools as JSON schemas (none takes an argument: each answers about the problem asked)."""
    return [{"type": "function", "function": {"name": n, "description": SPECS[n],
                                              "parameters": {"type": "object", "properties": {}}}} for n in names]


def template_for(tok, names: list[str]) -> dict:
    """apply_chat_template's arguments that offer the tools: the tokenizer's own template where it renders
    them, else TOOL_TEMPLATE."""
    probe = [{"role": "user", "content": "?"}]
    own = tok.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    offered = tok.apply_chat_template(probe, tools=tool_specs(names), tokenize=False, add_generation_prompt=True)
    return {"tools": tool_specs(names)} | ({} if offered != own else {"chat_template": TOOL_TEMPLATE})


def parse_call(text: str, names: list[str]) -> tuple[str, str] | None:
    """(the text before the call, the tool's name) of the first well-formed call of an offered tool, else None
    (no call, JSON that does not parse, a tool not offered: the turn is the answer). What follows the call
    (a model that goes on to imagine the reply) is left out of the chat."""
    m = CALL.search(text)
    if m is None:
        return None
    try:
        call = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    name = call.get("name") if isinstance(call, dict) else None
    return (text[:m.start()].strip(), name) if name in names else None


def tool_reply(name: str, problem: dict, captions: dict[str, str]) -> str:
    """What the factory answers a call with: the problem's caption or lecture, or says there is none."""
    if name == "caption":
        if caption := captions.get(problem["problem_id"]):
            return caption
        return "No caption is available for this problem's image." if problem.get("image_sha") else \
            "This problem has no image."
    return problem.get("lecture") or "There is no lecture for this problem."


@dataclass
class Conversation:
    """One problem's chat with the student: its turns, the tools it called, tokens and seconds so far."""
    chat: list[dict]
    calls: list[str] = field(default_factory=list)
    last: Generated | None = None
    prompt_tokens: int = 0  # every turn's prompt (the whole chat so far), as the model processed them
    new_tokens: int = 0
    seconds: float = 0.0

    def answer(self) -> Generated:
        return Generated(self.last.text, self.prompt_tokens, self.new_tokens, self.last.finished)


def step(c: Conversation, got: Generated, seconds: float, problem: dict, captions: dict[str, str],
         names: list[str], max_calls: int) -> bool:
    """Records one turn; answers its tool call (True: the student goes on) unless it is the answer."""
    c.last, c.prompt_tokens, c.new_tokens = got, c.prompt_tokens + got.prompt_tokens, c.new_tokens + got.new_tokens
    c.seconds += seconds
    call = parse_call(got.text, names)
    if call is None:
        return False
    before, name = call
    c.calls.append(name)  # a call past max_calls too: made (and counted), not answered; the turn is graded as is
    if len(c.calls) > max_calls:
        return False
    c.chat += [{"role": "assistant", "content": before,
                "tool_calls": [{"type": "function", "function": {"name": name, "arguments": {}}}]},
               {"role": "tool", "name": name, "content": tool_reply(name, problem, captions)}]
    return True


def converse(model, tok, problems: list[dict], prompts: list[str], captions: dict[str, str], names: list[str],
             cfg: EvaluateConfig) -> list[Conversation]:
    """Each problem's greedy conversation, `cfg.batch_size` chats a turn at a time: the rows that called a
    tool answer again with the tool's reply, until they answer or have made `cfg.max_tool_calls` calls."""
    template = template_for(tok, names)
    talks = [Conversation([{"role": "user", "content": p}]) for p in prompts]
    with Progress("evaluate with tools", total=len(prompts), unit="answers") as progress:
        for start in range(0, len(prompts), cfg.batch_size):
            going = list(range(start, min(start + cfg.batch_size, len(prompts))))
            while going:
                began = time.perf_counter()
                got = generate(model, tok, [talks[i].chat for i in going], cfg.max_new_tokens,
                               stop_at_answer=cfg.stop_at_answer, template=template)
                per = (time.perf_counter() - began) / len(going)  # the batch's time shared out
                going = [i for i, g in zip(going, got, strict=True)
                         if step(talks[i], g, per, problems[i], captions, names, cfg.max_tool_calls)]
            progress.update(min(cfg.batch_size, len(prompts) - start))
    return talks


def tool_frame(model, tok, problems: pl.DataFrame, captions: dict[str, str], info: dict, cfg: EvaluateConfig,
               verify: VerifyConfig, judge=None) -> pl.DataFrame:
    """Evals rows (variant `tools`, greedy, per prompt style) of a text student answering with the tools
    offered and neither the caption nor the lecture in its prompt; `tool_calls`: the tools it called."""
    rows, frames = problems.to_dicts(), []
    for style in cfg.prompts:
        prompts = [user_message(p, None, "plain", style) for p in rows]
        talks = converse(model, tok, rows, prompts, captions, list(cfg.tools), cfg)
        frame = eval_frame(rows, [(t.answer(), t.seconds) for t in talks],
                           info | dict(variant=TOOLS, prompt_style=style, decoding="greedy"), 1, verify, judge)
        frames.append(frame.with_columns(pl.Series("tool_calls", [t.calls for t in talks],
                                                   dtype=pl.List(pl.String))))
    return pl.concat(frames)
