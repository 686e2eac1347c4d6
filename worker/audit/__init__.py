"""Checking the audit log: the hash chain, the stream, the task table; exporting it."""
