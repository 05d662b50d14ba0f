"""Training the embedding model with Lightning (imports torch and lightning: never import at module level from
the CLI).

data (SegmentSource: concert views of consecutive windows rendered on the fly), stream (PairStream: the batches
of an epoch, a pure function of seed, epoch and index, sharded over workers and DDP ranks), valset (the
validation retrieval check behind early stopping), module (ContrastiveModule, PairDataModule), export (ONNX,
curves, MLflow model + registry alias), stage (`resonance train`).
"""
