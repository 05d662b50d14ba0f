"""`resonance calibrate`: fit the open-set decision of a model on the val queries (see `stage`)."""
