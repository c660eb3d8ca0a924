"""Decontamination: training problems that copy a val / test problem are flagged, left out of
the arms by default and counted; near matches agree with an independent LCS-based ratio."""

import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.config import FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from schemas.tables import read_table, write_table
from students.backends import arms_teacher
from tasks.arms import run_arms
from tasks.decontam import contamination, normalise
from tasks.ingest import ingest

Q = "Which of these states is farthest north? Look at the map and compare the positions of the states"


def problem(pid, split, question, choices=("a", "b"), image=None, hint=""):
    return dict(problem_id=pid, source="src", split=split, question=question, hint=hint, choices=list(choices),
                image_sha=image)


def flags(rows, near_match=95.0):
    return contamination(pl.DataFrame(rows), near_match)


def test_normalised_text_ignores_case_punctuation_spacing_and_option_order():
    assert normalise("Which  is FARTHEST north?", "", ["Utah", "Ohio"]) == normalise("which is farthest north", None,
                                                                                   ["Ohio", "Utah"])
    assert normalise("Which is farthest north?", "", ["Utah"]) != normalise("Which is farthest south?", "", ["Utah"])


def test_copies_near_copies_and_non_copies():
    rows = [
        problem("t-exact", "train", Q.upper() + " !"),  # same text once normalised: a copy
        problem("t-near", "train", Q.replace("farthest", "furthest")),  # one word respelled: ratio ~98
        problem("t-other", "train", "Which of these states is farthest south?"),  # another question
        problem("t-img", "train", Q, image="sha-x"),  # the question over another picture: another problem
        problem("v", "val", Q, image="sha-y"),
        problem("s", "test", Q),
    ]
    got = {r["problem_id"]: r for r in flags(rows).iter_rows(named=True)}
    assert set(got) == {"t-exact", "t-near", "t-img"}  # t-img still matches the image-less test copy
    assert got["t-exact"]["score"] == 100.0 and 95 <= got["t-near"]["score"] < 100
    assert got["t-img"]["match_id"] == "s"  # not v, whose image differs
    no_test = [r for r in rows if r["problem_id"] != "s"]
    assert set(flags(no_test)["problem_id"]) == {"t-exact", "t-near"}  # against v only: same-image rule


def lcs(a: str, b: str) -> int:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def reference_ratio(a: str, b: str) -> float:
    """Indel similarity from a plain LCS: what rapidfuzz's ratio computes, written independently."""
    return 100.0 * 2 * lcs(a, b) / (len(a) + len(b))


WORDS = "the which of is a an state north map cell energy force mass area".split()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 6), st.sampled_from([80.0, 90.0, 95.0]))
def test_near_matches_agree_with_a_reference_ratio(seed, edits, threshold):
    rnd = random.Random(seed)
    base = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 16)))
    text = list(base)
    for _ in range(edits):
        text[rnd.randrange(len(text))] = rnd.choice("xyz")
    train, test = "".join(text), base
    rows = [problem("tr", "train", train, choices=()), problem("te", "test", test, choices=())]
    expected = reference_ratio(normalise(train, "", []), normalise(test, "", [])) >= threshold
    assert (flags(rows, threshold).height == 1) == expected


@pytest.fixture()
def contaminated(tmp_path):
    """A synthetic data dir whose first training problem is rewritten as a copy of a test problem."""
    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=20), data)
    shard = next(data.table("problems").rglob("*.parquet"))
    df = read_table(shard, "problems")
    test = df.filter(pl.col("split") == "test").row(0, named=True)
    copy_id = df.filter(pl.col("split") == "train")["problem_id"][0]
    df = df.with_columns(
        [pl.when(pl.col("problem_id") == copy_id).then(pl.lit(test[c])).otherwise(pl.col(c)).alias(c)
         for c in ("question", "hint", "image_sha")]
        + [pl.when(pl.col("problem_id") == copy_id).then(pl.lit(test["choices"])).otherwise(pl.col("choices"))
           .alias("choices")])
    write_table(df, shard, "problems")
    return data, copy_id, test["problem_id"]


@pytest.mark.parametrize("leave_out", [True, False])
def test_arms_leave_copies_out_by_default_and_count_them(contaminated, leave_out):
    data, copy_id, test_id = contaminated
    cfg = FactoryConfig(data_dir=str(data.root), arms={"arms": ["raw", "answer_only"], "decontaminate": leave_out})
    result = run_arms(cfg, data, arms_teacher(cfg))
    flags = read_table(data.table("contamination"), "contamination")
    assert set(flags["kind"]) == {"text", "image"}  # the copy took the test problem's question and picture
    flagged = flags.filter(pl.col("kind") == "text")
    assert flagged["problem_id"].to_list() == [copy_id] and flagged["match_id"].to_list() == [test_id]
    assert result["contaminated"] == 1 and result["left_out"] == int(leave_out)
    raw = pl.read_parquet(data.arm("raw") / "train.parquet")
    assert (copy_id in raw["problem_id"].to_list()) is not leave_out
    n_train = read_table(data.table("problems"), "problems").filter(pl.col("split") == "train").height
    assert result["rows"]["raw"] == n_train - int(leave_out)


def test_a_re_encoded_or_resized_picture_is_the_same_picture_across_sources(tmp_path):
    """MathVista and CV-Bench reuse other datasets' images: a JPEG-re-encoded, resized copy under
    another source is the same picture; flags name both sources."""
    import io

    from PIL import Image, ImageDraw

    from tasks.ingest import store_image

    def picture(seed: int) -> Image.Image:
        rnd = random.Random(seed)
        img = Image.new("RGB", (200, 150), "white")
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y = rnd.randrange(180), rnd.randrange(130)
            draw.ellipse((x, y, x + 20, y + 20), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
        return img

    def encoded(img: Image.Image, fmt: str, size=None) -> bytes:
        buf = io.BytesIO()
        (img.resize(size) if size else img).save(buf, format=fmt, quality=70)
        return buf.getvalue()

    data = DataDir(tmp_path)
    original, copy_ = store_image(data, encoded(picture(1), "PNG")), store_image(data, encoded(picture(1), "JPEG", (150, 112)))
    other = store_image(data, encoded(picture(2), "PNG"))
    assert original[0] != copy_[0]  # other bytes ...
    rows = [dict(problem_id="t-copy", source="aokvqa", split="train", question=Q, hint="", choices=["a", "b"],
                 image_sha=copy_[0], image_phash=copy_[1]),
            dict(problem_id="t-img", source="aokvqa", split="train", question="How many balls are there?", hint="",
                 choices=["a", "b"], image_sha=copy_[0], image_phash=copy_[1]),
            dict(problem_id="t-other", source="aokvqa", split="train", question=Q, hint="", choices=["a", "b"],
                 image_sha=other[0], image_phash=other[1]),
            dict(problem_id="s", source="cvbench", split="test", question=Q, hint="", choices=["a", "b"],
                 image_sha=original[0], image_phash=original[1])]
    got = contamination(pl.DataFrame(rows), image_path=data.image)
    kinds = {(r["problem_id"], r["kind"]) for r in got.iter_rows(named=True)}
    assert kinds == {("t-copy", "text"), ("t-copy", "image"), ("t-img", "image")}  # ... the same picture
    assert set(got["source"]) == {"aokvqa"} and set(got["match_source"]) == {"cvbench"}
