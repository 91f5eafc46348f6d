"""Hito: border telemetry ingestion (Kafka -> Faust -> InfluxDB) under a versioned privacy policy."""
