"""Change detectors over one stream each: numeric, binary and categorical."""
