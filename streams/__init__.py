"""Drivers of the pipeline: the Kafka worker (faust) and the in-process runner."""
