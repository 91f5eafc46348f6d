"""`hito bench`: Hito against a consume-only ceiling, a naive pipeline and a Quix Streams peer
on the same data (bench/README.md)."""
