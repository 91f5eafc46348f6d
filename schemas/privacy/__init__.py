"""The privacy policy: one rule per payload field, versioned, loaded and checked at start-up."""
