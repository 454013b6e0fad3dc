"""Passes over the IR. Each is a function of (records, options); file reads happen only through
what the executor hands in, and no pass writes anything or reads global configuration."""
