"""Small copies of the datasets the presets read, in each dataset's real column layout (as its
dataset card declares the features), built with `datasets` here: saved with `save_to_disk` or
as the hub's parquet files; and MathVista's GitHub release layout."""

import io
import json
from pathlib import Path

from PIL import Image


def picture(colour: str, size=(48, 32)) -> Image.Image:
    return Image.new("RGB", size, colour)


def png(colour: str) -> bytes:
    buf = io.BytesIO()
    picture(colour).save(buf, format="PNG")
    return buf.getvalue()


def metadata(source: str, category: str, context: str, grade: str, skills: list[str], task: str) -> dict:
    return dict(category=category, context=context, grade=grade, img_height=32, img_width=48, language="english",
                skills=skills, source=source, split="testmini", task=task)


MATHVISTA = [  # AI4Math/MathVista testmini rows (pid 1, 2, 3, 12 and a text answer)
    dict(pid="1", question="By what distance d is the spring compressed?", image="images/1.jpg", choices=None,
         unit=None, precision=1.0, answer="1.2", question_type="free_form", answer_type="float",
         metadata=metadata("SciBench", "math-targeted-vqa", "scientific figure", "college", ["scientific reasoning"],
                           "textbook question answering"),
         query="Hint: Please answer the question requiring a floating-point number with one decimal place and provide "
               "the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: By what distance d is the spring compressed?"),
    dict(pid="2", question="what is the total volume of the measuring cup?", image="images/2.jpg", choices=None,
         unit="g", precision=None, answer="1000", question_type="free_form", answer_type="integer",
         metadata=metadata("TextVQA", "general-vqa", "natural image", "not applicable",
                           ["numeric commonsense", "arithmetic reasoning"], "visual question answering"),
         query="Hint: Please answer the question requiring an integer answer.\nQuestion: what is the total volume?"),
    dict(pid="3", question="△ABC的两内角平分线OB、OC相交于点O，若∠A＝110°，则∠BOC＝（）", image="images/3.jpg",
         choices=["135°", "140°", "145°", "150°"], unit=None, precision=None, answer="145°",
         question_type="multi_choice", answer_type="text",
         metadata=metadata("GeoQA+", "math-targeted-vqa", "geometry diagram", "high school",
                           ["geometry reasoning", "algebraic reasoning"], "geometry problem solving"),
         query="Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."),
    dict(pid="12", question="Are there fewer metallic fighters than rubber objects?", image="images/12.jpg",
         choices=["Yes", "No"], unit=None, precision=None, answer="Yes", question_type="multi_choice",
         answer_type="text", metadata=metadata("Super-CLEVR", "general-vqa", "synthetic scene", "not applicable",
                                               ["arithmetic reasoning"], "visual question answering"),
         query="Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."),
    dict(pid="20", question="Name the shape.", image="images/20.jpg", choices=None, unit=None, precision=None,
         answer="rhombus", question_type="free_form", answer_type="text",
         metadata=metadata("IconQA", "math-targeted-vqa", "abstract scene", "elementary school",
                           ["geometry reasoning"], "figure question answering"), query="Question: Name the shape."),
]
MATHVISTA_TEST = dict(MATHVISTA[0], pid="1001", answer="", metadata=dict(MATHVISTA[0]["metadata"], split="test"))
COLOURS = ["red", "green", "blue", "orange", "purple"]


def mathvista_dataset():
    import datasets

    features = datasets.Features({
        "pid": datasets.Value("string"), "question": datasets.Value("string"), "image": datasets.Value("string"),
        "decoded_image": datasets.Image(), "choices": datasets.Sequence(datasets.Value("string")),
        "unit": datasets.Value("string"), "precision": datasets.Value("float64"), "answer": datasets.Value("string"),
        "question_type": datasets.Value("string"), "answer_type": datasets.Value("string"),
        "metadata": {"category": datasets.Value("string"), "context": datasets.Value("string"),
                     "grade": datasets.Value("string"), "img_height": datasets.Value("int64"),
                     "img_width": datasets.Value("int64"), "language": datasets.Value("string"),
                     "skills": datasets.Sequence(datasets.Value("string")), "source": datasets.Value("string"),
                     "split": datasets.Value("string"), "task": datasets.Value("string")},
        "query": datasets.Value("string")})
    rows = [r | {"decoded_image": picture(c)} for r, c in zip(MATHVISTA, COLOURS, strict=True)]
    test = [MATHVISTA_TEST | {"decoded_image": picture("black")}]
    return datasets.DatasetDict({"testmini": datasets.Dataset.from_list(rows, features=features),
                                 "test": datasets.Dataset.from_list(test, features=features)})


def aokvqa_dataset():
    import datasets

    features = datasets.Features({
        "image": datasets.Image(), "question_id": datasets.Value("string"), "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "correct_choice_idx": datasets.Value("int8"),
        "direct_answers": datasets.Sequence(datasets.Value("string")),
        "difficult_direct_answer": datasets.Value("bool"), "rationales": datasets.Sequence(datasets.Value("string"))})

    def row(qid, colour, correct):
        return dict(image=picture(colour), question_id=qid, question="What is the man by the bags awaiting?",
                    choices=["skateboarder", "train", "delivery", "cab"], correct_choice_idx=correct,
                    direct_answers=["cab", "cab", "taxi", "cab", "ride", "taxi"] if correct is not None else [],
                    difficult_direct_answer=False,
                    rationales=["A train would not be on the street.", "He has bags.", "He waits at the curb."]
                    if correct is not None else [])

    return datasets.DatasetDict({
        "train": datasets.Dataset.from_list([row("22MexNkBPpdZGX6sxbxVBH", "red", 3)], features=features),
        "validation": datasets.Dataset.from_list([row("22jbM6gDxdaMaunuzgrsBB", "green", 1)], features=features),
        "test": datasets.Dataset.from_list([row("2Nz3VSxJkEbKqzBZ5e47zi", "blue", None)], features=features)})


def clevr_dataset():
    import datasets

    features = datasets.Features({"image": datasets.Image(), "thinking": datasets.Value("string"),
                                  "problem": datasets.Value("string"), "solution": datasets.Value("string")})
    rows = [dict(image=picture("gray"), thinking="<think>I count two cubes and one sphere.</think>",
                 problem="How many items are there in the image?", solution="<answer> 3 </answer>"),
            dict(image=picture("white"), thinking="<think>Nothing purple is shown.</think>",
                 problem="What number of purple metallic balls are there?", solution="<answer> 0 </answer>")]
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(rows, features=features)})


def sat_dataset():
    import datasets

    features = datasets.Features({"image_bytes": datasets.Sequence(datasets.Image()),
                                  "question": datasets.Value("string"),
                                  "answers": datasets.Sequence(datasets.Value("string")),
                                  "question_type": datasets.Value("string"), "correct_answer": datasets.Value("string")})

    def row(colour, answer, qtype="other"):
        return dict(image_bytes=[picture(colour), picture("black")], question="Is the sofa to the left of the lamp?",
                    answers=["left", "right"], question_type=qtype, correct_answer=answer)

    return datasets.DatasetDict({s: datasets.Dataset.from_list([row(c, a)], features=features) for s, c, a in
                                 [("train", "red", "left"), ("static", "green", "left"), ("val", "blue", "right"),
                                  ("test", "orange", "left")]})


def cvbench_dataset():
    import datasets

    features = datasets.Features({
        "idx": datasets.Value("int32"), "type": datasets.Value("string"), "task": datasets.Value("string"),
        "image": datasets.Image(), "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
        "prompt": datasets.Value("string"), "filename": datasets.Value("string"), "source": datasets.Value("string"),
        "source_dataset": datasets.Value("string"), "source_filename": datasets.Value("string"),
        "target_class": datasets.Value("string"), "target_size": datasets.Value("int64"),
        "bbox": datasets.Sequence(datasets.Sequence(datasets.Value("float64")))})
    rows = [dict(idx=0, type="2D", task="Count", image=picture("red"), question="How many pictures are in the image?",
                 choices=["3", "2", "1", "0"], answer="(C)", prompt="How many pictures are in the image? Select from "
                 "the following choices.\n(A) 3\n(B) 2\n(C) 1\n(D) 0", filename="img/2D/count/ade20k_10.png",
                 source="ADE20K", source_dataset="ADE20K Validation Set", source_filename="ADE_val_00000248.jpg",
                 target_class="picture", target_size=2, bbox=[[1.0, 2.0, 3.0, 4.0]]),
            dict(idx=1, type="3D", task="Depth", image=picture("blue"), question="Which is closer to the camera?",
                 choices=["lamp", "chair"], answer="(B)", prompt="Which is closer?\n(A) lamp\n(B) chair",
                 filename="img/3D/depth/omni3d_1.png", source="Omni3D", source_dataset="Omni3D",
                 source_filename="x.jpg", target_class="chair", target_size=1, bbox=[[0.0, 0.0, 1.0, 1.0]])]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows, features=features)})


BUILDERS = {"mathvista": mathvista_dataset, "aokvqa": aokvqa_dataset, "clevr_cogent": clevr_dataset,
            "sat": sat_dataset, "cvbench": cvbench_dataset}


def save(preset: str, root: Path, layout: str) -> Path:
    """The preset's fixture as a `save_to_disk` directory, or as the hub's parquet files
    (data/<split>-00000-of-00001.parquet)."""
    data = BUILDERS[preset]()
    if layout == "save_to_disk":
        data.save_to_disk(str(root / preset))
        return root / preset
    out = root / preset / "data"
    out.mkdir(parents=True, exist_ok=True)
    for split, part in data.items():
        part.to_parquet(str(out / f"{split}-00000-of-00001.parquet"))
    return root / preset


def mathvista_release(root: Path) -> Path:
    """The GitHub release layout: data/testmini.json, data/texts/*.json, data/images/."""
    data = root / "MathVista" / "data"
    (data / "texts").mkdir(parents=True)
    (data / "images").mkdir()
    release = {r["pid"]: {k: v for k, v in r.items() if k != "query"} for r in MATHVISTA}
    (data / "testmini.json").write_text(json.dumps(release, ensure_ascii=False, indent=2))
    for r, colour in zip(MATHVISTA, COLOURS, strict=True):
        picture(colour).convert("RGB").save(data / r["image"], format="JPEG")
    (data / "texts" / "captions_bard.json").write_text(json.dumps(
        {"model": "bard", "date": "2023-09-13", "texts": {"1": "A spring-mass system on a frictionless surface.",
                                                          "2": "A measuring cup of flour."}}))
    (data / "texts" / "ocrs_easyocr.json").write_text(json.dumps(
        {"model": "easyocr", "texts": {"1": "[([[161, 39], [766, 39], [766, 120], [161, 120]], 'The spring force does', "
                                            "0.91), ([[316, 304], [344, 304], [344, 344], [316, 344]], 'k', 0.99)]",
                                       "3": "[]"}}))
    return root / "MathVista"
