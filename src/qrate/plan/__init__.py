"""Plan models: the strict, versioned description of a cull (docs/plan-language.md)."""
