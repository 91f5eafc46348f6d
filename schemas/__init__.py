"""Hito's contracts: event models, exported JSON Schema and the privacy policy."""
