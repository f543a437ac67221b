"""The model stage: a 4-bit (or plain) base with LoRA adapters as a LightningModule, and how bases load."""
