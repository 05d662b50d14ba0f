"""Field tests: a labeled set of recordings (CSV: file, track_id, venue, device) evaluated like a query set,
top-1 and false accepts per venue and device (`evaluate`).

No real concert recordings of the catalog exist here, so the default field set (`build`, DVC stage `field`) is
made OUTSIDE the concert simulator: catalog excerpts played through a real measured PA speaker-cabinet response,
real measured room responses (guitarix's `greathall.wav`, jconvolver's `street2`), mixed with the crowd beds of
data/banks (built from real crowd, applause and speech recordings), then through a real measured small-speaker
response and hard clipping for the phone. It stands in for real field clips; it is not one.
"""
