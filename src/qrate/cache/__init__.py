"""Persistent state: the SQLite index and the content-addressed preview store."""
