"""The FAISS reference index of learned embeddings and the recognizer on top of it.

store (EmbeddingIndex: vectors + track/time metadata, atomic save/load), vote (the temporal-consistency
decision and its confidence), method (EmbeddingMethod: the evaluation Method "embedding"), stage (the
`resonance index build|add` and `resonance identify` verbs).
"""
