"""Landmark fingerprinting (Wang 2003, "Shazam"): the hashing baseline that learned embeddings are measured against.

Audio (mono float32 at `sr`) -> spectral peaks (`peaks`) -> peak-pair hashes (f1, df, dt) (`hashes`) ->
an inverted index hash -> (track, frame) on sorted numpy arrays (`index`) -> offset-histogram voting (`match`).
Every knob is a field of `peaks.LandmarkConfig`; nothing here reads params.yaml.
"""
