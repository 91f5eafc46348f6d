"""The baselines Hito is measured against, each run as a child process by the harness."""
