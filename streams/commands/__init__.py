"""``hito`` sub-commands, one module per group."""
