"""The `queries` stage: evaluation query sets with ground truth (excerpt x grid condition)."""
