"""The language_model task: decoder language models (KerasHub Llama) pretrained or LoRA fine-tuned."""
