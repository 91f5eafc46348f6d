"""`hito demo`: the whole platform on the local stack, in a few minutes (see run.py)."""
