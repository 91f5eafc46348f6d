"""``hito simulate``: a synthetic device fleet for the reference crossing."""
