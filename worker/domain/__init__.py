"""What the registry means, free of Redis and SQL: errors and changes."""
