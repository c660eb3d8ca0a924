"""`compose` students: a tiny VLM built from parts, as the chain-of-thought VLM experiment builds one
(ViT encoder + 2-layer projector + SmolLM-135M).

picture -> `train.compose.encoder` (any transformers image model with its image processor: SigLIP, ViT,
CLIP vision; frozen) -> its patch embeddings (N, C), optionally average-pooled to `image_tokens` ->
the projector (`linear` or `mlp2`: linear, GELU, linear) -> (N, D) embeddings spliced into the input
embeddings of `train.model` (the LM, default the embedded SmolLM2-135M) where the prompt holds N
copies of the placeholder token `<|image|>` (added to a copy of the LM's tokenizer; the LM never
embeds it, so its vocabulary stays as it is) -> the causal LM.

Training (`train.methods: [lora]`, rows as a vlm student's: students/vlm.py `training_rows`), a plain
torch loop with the loss on the completion tokens only:
1. the projector alone (`compose.stage1_*`), encoder and LM unchanged;
2. projector + LoRA on the LM's linear layers (peft; `train.epochs`, `train.lora`).
The student directory holds `projector.safetensors`, the LoRA adapter (`adapter_config.json`,
`adapter_model.safetensors`), `compose.json` (encoder, LM, projector kind and shape, image tokens)
and train_meta.json; `load_compose(dir)` loads the encoder and LM it names. The untrained composition (the
`base` student) has a projector drawn from seed 0. No checkpoints: a killed run trains again.
"""

import json
import math
import time
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from schemas import atomic
from schemas.config import ComposeConfig, TrainConfig
from schemas.progress import Progress
from students.model import keep_freed_memory, load_model, resolve

IMAGE_TOKEN = "<|image|>"
SPEC, PROJECTOR = "compose.json", "projector.safetensors"


@lru_cache(maxsize=2)
def load_encoder(name: str):
    """(frozen vision model, its image processor, tokens per picture, feature size). A CLIP / SigLIP
    checkpoint with a text tower gives its vision tower."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    keep_freed_memory()
    model = AutoModel.from_pretrained(name, dtype=torch.float32)
    encoder = getattr(model, "vision_model", model).requires_grad_(False).eval()
    processor = AutoImageProcessor.from_pretrained(name)
    blank = processor([Image.new("RGB", (32, 32))], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        n, c = encoder(pixel_values=blank).last_hidden_state.shape[1:]  # (1, N, C)
    return encoder.to("cuda" if torch.cuda.is_available() else "cpu"), processor, int(n), int(c)


def projector(kind: str, c: int, d: int) -> nn.Module:
    return nn.Linear(c, d) if kind == "linear" else nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))


class ComposeProcessor:
    """Chat text and pictures -> input_ids with N placeholders per picture, attention_mask, pixel_values;
    called as students/vlm.py calls a VLM's processor."""

    def __init__(self, tokenizer, image_processor, image_tokens: int):
        self.tokenizer, self.image_processor, self.image_tokens = tokenizer, image_processor, image_tokens
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """Typed content (an image part, text parts) as the LM's own chat template's strings, the
        picture's placeholders first."""
        def flat(content):
            if isinstance(content, str):
                return content
            return "".join(IMAGE_TOKEN * self.image_tokens + "\n" if c["type"] == "image" else c["text"]
                           for c in content)

        plain = [{"role": m["role"], "content": flat(m["content"])} for m in messages]
        return self.tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)

    def __call__(self, text: list[str], images: list[list] | None = None, padding: bool = False,
                 padding_side: str = "left", return_tensors: str = "pt"):
        from transformers import BatchFeature

        enc = dict(self.tokenizer(text, add_special_tokens=False, padding=padding, padding_side=padding_side,
                                  return_tensors="pt"))
        pictures = [im for row in images or [] for im in row]
        if int((enc["input_ids"] == self.image_token_id).sum()) != len(pictures) * self.image_tokens:
            raise ValueError(f"{len(pictures)} pictures for a text with a different number of {IMAGE_TOKEN} runs")
        if pictures:
            enc["pixel_values"] = self.image_processor(pictures, return_tensors="pt")["pixel_values"]
        return BatchFeature(enc, tensor_type="pt")


@lru_cache(maxsize=2)
def compose_processor(lm: str, encoder: str, pool: int | None) -> ComposeProcessor:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(lm))  # a copy of its own: the token is added to this one only
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    _, image_processor, n, _ = load_encoder(encoder)
    return ComposeProcessor(tok, image_processor, pool or n)


class Composed(nn.Module):
    """encoder -> projector -> LM input embeddings at the placeholders -> LM; `generate` as a VLM's."""

    def __init__(self, spec: dict, lm, proj: nn.Module):
        super().__init__()
        self.spec, self.lm, self.projector = spec, lm, proj
        self.encoder = load_encoder(spec["encoder"])[0]
        self.processor = compose_processor(spec["lm"], spec["encoder"], spec["pool"])

    @property
    def device(self):
        return self.lm.device

    @property
    def generation_config(self):
        return self.lm.generation_config

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout either
        return self

    def image_embeds(self, pixel_values):
        with torch.no_grad():
            h = self.encoder(pixel_values=pixel_values.to(self.device)).last_hidden_state  # (n, N, C)
        if self.spec["pool"]:
            h = nn.functional.adaptive_avg_pool1d(h.transpose(1, 2), self.spec["pool"]).transpose(1, 2)
        return self.projector(h)  # (n, image_tokens, D)

    def embed(self, input_ids, pixel_values=None):
        """The LM's input embeddings (B, T, D) with each picture's embeddings at its placeholders, in order."""
        at = input_ids == self.processor.image_token_id  # (B, T)
        embeds = self.lm.get_input_embeddings()(input_ids.masked_fill(at, self.processor.tokenizer.pad_token_id))
        if pixel_values is None:
            return embeds
        return embeds.masked_scatter(at[..., None].expand_as(embeds), self.image_embeds(pixel_values).to(embeds.dtype))

    def forward(self, input_ids, attention_mask=None, pixel_values=None, labels=None, **kwargs):
        return self.lm(inputs_embeds=self.embed(input_ids, pixel_values), attention_mask=attention_mask,
                       labels=labels, **kwargs)

    def generate(self, input_ids, attention_mask=None, pixel_values=None, **kwargs):
        """(B * n, T + new) token ids as a VLM's generate returns them (the placeholders shown as pad)."""
        ids = input_ids.masked_fill(input_ids == self.processor.image_token_id, self.processor.tokenizer.pad_token_id)
        return self.lm.generate(input_ids=ids, inputs_embeds=self.embed(input_ids, pixel_values),
                                attention_mask=attention_mask, **kwargs)


def new_spec(lm: str, cfg: ComposeConfig) -> dict:
    """compose.json of a new student: its parts by name and the projector's shape."""
    _, _, n, c = load_encoder(cfg.encoder)
    return dict(encoder=cfg.encoder, lm=lm, projector=cfg.projector, pool=cfg.image_tokens,
                image_tokens=cfg.image_tokens or n, encoder_dim=c, image_token=IMAGE_TOKEN)


def assemble(spec: dict, seed: int = 0) -> Composed:
    """The parts of `spec` with a projector drawn from `seed` (the global random state left as it was)."""
    lm = load_model(spec["lm"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        proj = projector(spec["projector"], spec["encoder_dim"], lm.config.hidden_size)
    spec = spec | dict(lm_dim=lm.config.hidden_size)
    return Composed(spec, lm, proj.to(lm.device)).eval()


def load_compose(adapter_dir: str | None, lm: str | None = None, cfg: ComposeConfig | None = None) -> Composed:
    """A trained compose student from its directory (LoRA merged in), or the untrained composition of
    `lm` and `cfg` (adapter_dir None)."""
    if adapter_dir is None:
        return assemble(new_spec(lm, cfg or ComposeConfig()))
    from peft import PeftModel
    from safetensors.torch import load_file

    model = assemble(json.loads((Path(adapter_dir) / SPEC).read_text()))
    model.projector.load_state_dict(load_file(str(Path(adapter_dir) / PROJECTOR), device=str(model.device)))
    model.lm = PeftModel.from_pretrained(model.lm, adapter_dir).merge_and_unload()  # same outputs, plain speed
    return model.eval()


def save_compose(model: Composed, out_dir: Path) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.projector.state_dict().items()}, str(out_dir / PROJECTOR))
    model.lm.save_pretrained(str(out_dir))  # the LoRA adapter only
    atomic.write_text(out_dir / SPEC, json.dumps(model.spec, indent=2))


def example(processor: ComposeProcessor, row: dict) -> dict:
    """One training row (students/vlm.py `training_rows`) as ids (T,), labels (T,: -100 outside the
    completion) and its picture (or None)."""
    from students.vlm import chat

    prompt = chat(row["prompt"][0]["content"], bool(row["images"]))
    whole = prompt + [{"role": "assistant", "content": [{"type": "text", "text": row["completion"][0]["content"]}]}]
    images = [row["images"]] if row["images"] else None
    enc = processor([processor.apply_chat_template(whole)], images)
    ids = enc["input_ids"][0]
    head = processor([processor.apply_chat_template(prompt, add_generation_prompt=True)], images)["input_ids"][0]
    if not torch.equal(ids[:len(head)], head):
        raise ValueError("the chat template does not lay the prompt out alike with and without the answer")
    labels = ids.clone()
    labels[:len(head)] = -100
    return dict(input_ids=ids, labels=labels, pixel_values=enc.get("pixel_values"))


def collate(batch: list[dict], pad: int) -> dict:
    """Right-padded (B, T) ids, mask and labels; the batch's pictures in row order."""
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad)
    labels, mask = torch.full_like(ids, -100), torch.zeros_like(ids)
    for i, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = e["input_ids"], e["labels"], 1
    pixels = [e["pixel_values"] for e in batch if e["pixel_values"] is not None]
    return dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=torch.cat(pixels) if pixels else None)


def run_stage(model: Composed, params: list, examples: list[dict], steps: int, lr: float, batch_size: int,
              seed: int, progress: Progress | None) -> tuple[float, int]:
    """`steps` AdamW steps on `params` over shuffled passes of `examples`; (mean loss, tokens seen)."""
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)
    queue, losses, tokens = [], [], 0
    model.train()
    for _ in range(steps):
        if len(queue) < batch_size:
            queue += [examples[i] for i in torch.randperm(len(examples), generator=order).tolist()]
        batch, queue = collate(queue[:batch_size], model.processor.tokenizer.pad_token_id), queue[batch_size:]
        loss = model(**{k: v.to(model.device) if v is not None else None for k, v in batch.items()}).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
        if progress:
            progress.update(1, loss=round(losses[-1], 4))
    model.eval()
    return sum(losses) / len(losses), tokens


def lora_on(model: Composed, cfg: TrainConfig) -> None:
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if cfg.lora.targets == "auto" else cfg.lora.targets  # the LM's layers only
    model.lm = get_peft_model(model.lm, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, task_type="CAUSAL_LM",
                                                   lora_dropout=cfg.lora.dropout, target_modules=targets))


def steps_of(cfg: TrainConfig, n: int) -> tuple[int, int]:
    """Optimiser steps of stage 1 and stage 2 over n examples."""
    first = cfg.compose.stage1_max_steps or math.ceil(cfg.compose.stage1_epochs * n / cfg.batch_size)
    return first, math.ceil(cfg.epochs * n / cfg.batch_size)


def stage_one(model: Composed, examples: list[dict], cfg: TrainConfig, seed: int = 0,
              progress: Progress | None = None) -> dict:
    """The projector alone; encoder and LM weights stay as loaded."""
    model.lm.requires_grad_(False)
    steps = steps_of(cfg, len(examples))[0]
    loss, tokens = run_stage(model, list(model.projector.parameters()), examples, steps,
                             cfg.compose.stage1_learning_rate, cfg.batch_size, seed, progress)
    return dict(stage1_steps=steps, stage1_loss=loss, stage1_tokens=tokens)


def stage_two(model: Composed, examples: list[dict], cfg: TrainConfig, seed: int = 0,
              progress: Progress | None = None) -> dict:
    """Projector + a new LoRA adapter on the LM (its base weights frozen by peft)."""
    lora_on(model, cfg)
    trainable = [p for p in model.lm.parameters() if p.requires_grad] + list(model.projector.parameters())
    steps = steps_of(cfg, len(examples))[1]
    loss, tokens = run_stage(model, trainable, examples, steps, cfg.lora.learning_rate, cfg.batch_size, seed + 1,
                             progress)
    return dict(stage2_steps=steps, train_loss=loss, stage2_tokens=tokens)


def train_compose(cfg: TrainConfig, rows: list[dict], out_dir: Path, progress: Progress | None = None,
                  seed: int = 0) -> dict:
    """Stage 1 then stage 2 on the rows; the student saved in `out_dir`; what train_meta.json records."""
    torch.manual_seed(seed)
    model = assemble(new_spec(cfg.model, cfg.compose), seed)
    examples = [example(model.processor, r) for r in rows]
    if progress:
        progress.reset(total=sum(steps_of(cfg, len(rows))))
    start = time.perf_counter()
    done = stage_one(model, examples, cfg, seed, progress)
    done |= stage_two(model, examples, cfg, seed, progress)
    wall = time.perf_counter() - start
    save_compose(model, Path(out_dir))
    return done | dict(train_tokens=done["stage1_tokens"] + done["stage2_tokens"], wall_s=round(wall, 2),
                       resumed=False, steps=done["stage1_steps"] + done["stage2_steps"], device=str(model.device))
