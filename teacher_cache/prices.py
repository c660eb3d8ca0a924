"""USD per million tokens by model: shipped list prices, overridable with `prices:` in the config.

List prices as published by the providers in 2025 (standard tier, short prompts); check your
provider's page and override them in the config for your contract, batch or cached-input rates.
Self-hosted backends (`local`, `vllm`) cost nothing per token: their cost is machine time.
"""

from schemas.config import ModelPrice

DEFAULT_PRICES: dict[str, tuple[float, float]] = {  # model: (input, output) USD per 1M tokens
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
SELF_HOSTED = {"local", "vllm"}


def price_for(backend: str, model: str, overrides: dict[str, ModelPrice]) -> ModelPrice | None:
    """The model's price: the config's, else the shipped one (longest matching prefix, so dated
    snapshots such as `gpt-4o-2024-08-06` find `gpt-4o`), else 0 when self-hosted, else None."""
    name = model.removeprefix("models/")
    if name in overrides:
        return overrides[name]
    if backend in SELF_HOSTED:
        return ModelPrice(input_per_mtok=0.0, output_per_mtok=0.0)
    known = [m for m in DEFAULT_PRICES if name == m or name.startswith(m + "-")]
    if not known:
        return None
    inp, out = DEFAULT_PRICES[max(known, key=len)]
    return ModelPrice(input_per_mtok=inp, output_per_mtok=out)


def cost_usd(price: ModelPrice | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6
