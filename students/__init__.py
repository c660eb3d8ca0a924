"""Student models: loading, LoRA / prompt-tuning training, inference and evaluation."""
