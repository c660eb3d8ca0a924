"""Built-in generator of rendered visual STEM problems with exact answers.

Five families (counting, bar charts, balances, rulers, triangle angles), each drawn with
Pillow and shipped with a lecture, a step-by-step solution and a caption describing the
image, so a text-only teacher can solve it from the caption. Seeded: same seed, same data.
"""

import io
import random
from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw, ImageFont

from schemas.config import SyntheticIngest
from tasks.sources import Record

SIZE = (256, 256)  # pixels
COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (30, 160, 60), "orange": (240, 150, 20)}
SHAPES = ("circle", "square", "triangle")
FONT = ImageFont.load_default()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", SIZE, "white")
    return img, ImageDraw.Draw(img)


def draw_shape(d: ImageDraw.ImageDraw, shape: str, x: int, y: int, r: int, fill) -> None:
    if shape == "circle":
        d.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == "square":
        d.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


def count_shapes(rng: random.Random) -> dict:
    cells = rng.sample(range(16), rng.randint(5, 10))  # 4x4 grid, one shape per cell
    items = [(rng.choice(list(COLOURS)), rng.choice(SHAPES)) for _ in cells]
    colour, shape = rng.choice(items)
    img, d = canvas()
    for cell, (c, s) in zip(cells, items, strict=True):
        draw_shape(d, s, 32 + 64 * (cell % 4), 32 + 64 * (cell // 4), 22, COLOURS[c])
    n = sum(1 for it in items if it == (colour, shape))
    tally: dict[str, int] = {}
    for c, s in items:
        tally[f"{c} {s}"] = tally.get(f"{c} {s}", 0) + 1
    described = ", ".join(f"{v} {k}{'s' if v > 1 else ''}" for k, v in sorted(tally.items()))
    return dict(
        question=f"How many {colour} {shape}s are in the picture?",
        answer=str(n), answer_type="numeric", image=png(img),
        caption=f"A picture with {len(items)} shapes: {described}.",
        lecture="To count objects that must have two properties, check each object for both "
        "properties and count only the objects that have both.",
        solution=f"Look for shapes that are {colour} and are {shape}s. Other colours or other "
        f"shapes do not count. There {'is' if n == 1 else 'are'} {n} {colour} {shape}{'s' if n > 1 else ''}.",
        subject="math", topic="counting", category="Count objects", grade=f"grade{rng.randint(1, 3)}",
    )


def bar_chart(rng: random.Random) -> dict:
    labels = rng.sample(["apples", "pears", "plums", "grapes", "lemons", "cherries"], rng.randint(3, 4))
    values = rng.sample(range(1, 11), len(labels))  # distinct, so the extreme is unique
    most = rng.random() < 0.5
    pick = labels[values.index(max(values) if most else min(values))]
    img, d = canvas()
    d.line((30, 220, 240, 220), fill="black")
    d.line((30, 20, 30, 220), fill="black")
    width = 180 // len(labels)
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x0 = 40 + i * width
        d.rectangle((x0, 220 - 18 * v, x0 + width - 12, 220), fill=COLOURS["blue"])
        d.text((x0, 226), lab, fill="black", font=FONT)
        d.text((x0, 205 - 18 * v), str(v), fill="black", font=FONT)
    word = "most" if most else "fewest"
    pairs = ", ".join(f"{lab} {v}" for lab, v in zip(labels, values, strict=True))
    return dict(
        question=f"The bar chart shows how many boxes of each fruit a shop sold. Which fruit sold the {word} boxes?",
        choices=labels, answer=pick, answer_index=labels.index(pick), answer_type="multiple_choice",
        image=png(img), caption=f"A bar chart of boxes of fruit sold: {pairs}.",
        lecture="In a bar chart, the height of each bar shows a value. The tallest bar shows the "
        "largest value and the shortest bar shows the smallest value.",
        solution=f"Compare the heights of the bars: {pairs}. The {'tallest' if most else 'shortest'} "
        f"bar is {pick}, so {pick} sold the {word} boxes.",
        subject="math", topic="data", category="Read bar charts", grade=f"grade{rng.randint(2, 4)}",
    )


def balance(rng: random.Random) -> dict:
    left, right = [rng.randint(1, 9) for _ in range(2)], [rng.randint(1, 9) for _ in range(2)]
    while sum(left) == sum(right):
        right = [rng.randint(1, 9) for _ in range(2)]
    img, d = canvas()
    d.polygon([(128, 120), (112, 200), (144, 200)], fill="gray")  # fulcrum
    d.line((30, 120, 226, 120), fill="black", width=4)  # the beam is drawn level on purpose
    for x0, masses in ((40, left), (150, right)):
        for j, m in enumerate(masses):
            d.rectangle((x0 + 36 * j, 80, x0 + 36 * j + 30, 116), outline="black", fill=COLOURS["orange"])
            d.text((x0 + 36 * j + 5, 92), f"{m}kg", fill="black", font=FONT)
    heavier = "the left pan" if sum(left) > sum(right) else "the right pan"
    choices = ["the left pan", "the right pan"]
    return dict(
        question="Two blocks sit on each pan of the balance. Which pan holds the greater total mass?",
        choices=choices, answer=heavier, answer_index=choices.index(heavier), answer_type="multiple_choice",
        image=png(img),
        caption=f"A balance with blocks of {left[0]} kg and {left[1]} kg on the left pan and "
        f"{right[0]} kg and {right[1]} kg on the right pan.",
        lecture="The total mass on a pan is the sum of the masses of the objects on it. The pan "
        "with the greater total mass pulls its side of a balance down.",
        solution=f"Left pan: {left[0]} + {left[1]} = {sum(left)} kg. Right pan: {right[0]} + "
        f"{right[1]} = {sum(right)} kg. {max(sum(left), sum(right))} kg is more, so {heavier} is heavier.",
        subject="physics", topic="forces", category="Compare masses", grade=f"grade{rng.randint(3, 5)}",
    )


def ruler(rng: random.Random) -> dict:
    start = rng.randint(0, 4)
    end = rng.randint(start + 2, 10)
    obj = rng.choice(["pencil", "crayon", "nail", "ribbon"])
    img, d = canvas()
    x = lambda cm: 20 + 21 * cm  # noqa: E731  (pixels per centimetre on the drawn ruler)
    d.rectangle((20, 150, 230, 180), outline="black")
    for cm in range(11):
        d.line((x(cm), 150, x(cm), 162), fill="black")
        d.text((x(cm) - 3, 165), str(cm), fill="black", font=FONT)
    d.rectangle((x(start), 110, x(end), 130), fill=COLOURS["green"])
    return dict(
        question=f"Use the ruler to measure the {obj}. How long is the {obj} in centimetres?",
        answer=str(end - start), answer_type="numeric", image=png(img),
        caption=f"A {obj} above a centimetre ruler; the {obj} starts at the {start} cm mark and "
        f"ends at the {end} cm mark.",
        lecture="To measure with a ruler, find the marks at both ends of the object. The length is "
        "the end mark minus the start mark.",
        solution=f"The {obj} starts at {start} cm and ends at {end} cm. Its length is {end} - {start} = {end - start} cm.",
        subject="math", topic="measurement", category="Measure lengths", grade=f"grade{rng.randint(2, 4)}",
    )


def triangle_angle(rng: random.Random) -> dict:
    a = rng.randint(30, 90)
    b = rng.randint(20, 150 - a)
    c = 180 - a - b
    img, d = canvas()
    pts = [(30, 210), (226, 210), (rng.randint(70, 190), 40)]
    d.polygon(pts, outline="black", width=2)
    d.text((50, 192), f"{a}", fill="black", font=FONT)
    d.text((190, 190), f"{b}", fill="black", font=FONT)
    d.text((pts[2][0] - 4, 55), "?", fill="black", font=FONT)
    return dict(
        question="Two angles of the triangle are marked. What is the measure of the angle marked ?, in degrees?",
        answer=str(c), answer_type="numeric", image=png(img),
        caption=f"A triangle with angles of {a} degrees and {b} degrees; the third angle is marked ?.",
        lecture="The three angles of any triangle add up to 180 degrees.",
        solution=f"The angles add up to 180 degrees, so the missing angle is 180 - {a} - {b} = {c} degrees.",
        subject="math", topic="geometry", category="Angles of a triangle", grade=f"grade{rng.randint(4, 6)}",
    )


FAMILIES: dict[str, Callable[[random.Random], dict]] = {
    "count_shapes": count_shapes,
    "bar_chart": bar_chart,
    "balance": balance,
    "ruler": ruler,
    "triangle_angle": triangle_angle,
}


class SyntheticSource:
    name = "synthetic"

    def __init__(self, cfg: SyntheticIngest):
        self.n, self.seed, self.fractions = cfg.n_problems, cfg.seed, dict(cfg.split_fractions)

    def split_of(self, i: int) -> str:
        """Splits by position in a seeded permutation, so the shares are exact, not random."""
        rank = random.Random(self.seed).sample(range(self.n), self.n).index(i) / self.n
        edge = 0.0
        for split, share in self.fractions.items():
            edge += share
            if rank < edge:
                return split
        return "train"

    def records(self) -> Iterator[Record]:
        names = list(FAMILIES)
        for i in range(self.n):
            family = names[i % len(names)]  # round-robin, so every split sees every family
            rng = random.Random(f"{self.seed}:{i}")
            yield Record(source_id=f"{family}-{self.seed}-{i}", split=self.split_of(i), **FAMILIES[family](rng))
