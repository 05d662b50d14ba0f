"""Concert degradation simulator: pure functions that turn clean music into what a phone records at a gig."""
