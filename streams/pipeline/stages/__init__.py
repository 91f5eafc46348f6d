"""Pure pipeline stages: typed functions over typed events, one name each."""
