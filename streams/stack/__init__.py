"""The local real-service stack behind ``hito up|down|status``."""
