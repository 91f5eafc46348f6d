"""Sinks: where aggregates leave the pipeline."""
