"""Drivers of the pipeline: the Kafka ingest worker and the in-process runner."""
