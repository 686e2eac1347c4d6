"""Redis: reading command entries, answering on reply channels, relaying events."""
