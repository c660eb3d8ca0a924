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
        in_heap(student)
        return student.merge_and_unload().eval()  # same outputs, plain-model speed
    return student.eval()


def in_heap(student) -> None:
    """Moves the weights a LoRA merge writes (each wrapped layer's base weight) out of the checkpoint's
    memory map first, on the CPU: the first write to each 4 KiB mapped page is a copy-on-write fault
    (1.3 s a student on this machine's 540 MB model, against about 0.1 s for one copy into the heap).
    Same values; the embeddings and anything tied to them are not LoRA targets here and stay mapped."""
    for module in student.modules():
        weight = getattr(getattr(module, "base_layer", None), "weight", None)
        if weight is not None and weight.device.type == "cpu":
            weight.data = weight.data.clone()
