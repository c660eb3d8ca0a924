"""Loading a trained student: its base model (a text model, a vlm, or a compose student's parts)
with its adapter applied. Above students/model.py, vlm.py and compose.py, which it calls."""


def load_student(base: str, adapter_dir: str | None, kind: str = "causal_lm", compose=None):
    """The base model (a vlm: image-text-to-text) with the adapter applied; LoRA merged in. A compose
    student: its directory, or the untrained composition of `base` and `compose` (a ComposeConfig)."""
    if kind == "compose":
        from students.compose import load_compose

        return load_compose(adapter_dir, base, compose)
    if kind == "vlm":
        from students.vlm import load_vlm

        model = load_vlm(base)
    else:
        from students.model import load_model

        model = load_model(base)
    if adapter_dir is None:
        return model
    from peft import PeftModel

    student = PeftModel.from_pretrained(model, adapter_dir)
    if student.peft_config["default"].peft_type == "LORA":
        in_heap(model)
        return student.merge_and_unload().eval()  # same outputs, plain-model speed
    return student.eval()


def in_heap(model) -> None:
    """Moves the weights out of the checkpoint's memory map before the merge writes them: the first write to
    each 4 KiB mapped page is a copy-on-write fault (1.3 s a student on this machine's 540 MB model,
    against 0.1 s for one copy into the heap). Same values; tied weights stay tied (one Parameter)."""
    for p in model.parameters():
        p.data = p.data.clone()
