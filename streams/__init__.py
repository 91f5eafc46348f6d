"""Hito: border telemetry ingestion (Kafka -> Faust -> InfluxDB) under a privacy policy."""
