"""Personal tokens: DreamBooth-LoRA and textual-inversion training on a user's photos."""
