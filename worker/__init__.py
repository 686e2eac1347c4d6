"""The tasks worker: applies task commands from Redis streams to the registry."""
