"""The registry's rules and how a batch of commands is applied in one transaction."""
