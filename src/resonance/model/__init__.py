"""The learned song encoder as plain torch code: log-mel frontend, encoders, contrastive losses, builders.

    audio (batch, n_samples) at sr -> LogMel -> (batch, n_mels, n_frames) -> encoder -> (batch, dim), unit L2 norm

`frontend` (windows, mel filterbank, LogMel), `encoders` (NafpEncoder, PatchTransformerEncoder), `losses`
(nt_xent, supcon, triplet_hard, MemoryQueue) and `builders` (config names -> objects, raising on unknown names).
These modules import torch at their top: nothing outside `resonance.model` may import them at module level, so
`import resonance` and `resonance --help` stay free of torch. Lightning wrappers live beside, not in, these modules.
"""
