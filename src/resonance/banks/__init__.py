"""The `banks` stage: room impulse responses and crowd beds, made once."""
