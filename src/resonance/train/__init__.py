"""Training the embedding model with Lightning (imports torch and lightning: never import at module level from
the CLI).

data (PairDataset: concert pairs drawn on the fly, a pure function of seed, epoch and index), valset (the
validation retrieval check behind early stopping), module (ContrastiveModule, PairDataModule), export (ONNX,
curves, MLflow model + registry alias), stage (`resonance train`).
"""
