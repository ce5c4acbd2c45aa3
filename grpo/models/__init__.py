"""Model loading (transformers + PEFT, Unsloth), the embedded SmolLM2, export and portability."""
