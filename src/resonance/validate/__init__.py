"""The `validate` stage: Great Expectations suites over the catalog manifest and per-track audio statistics."""
