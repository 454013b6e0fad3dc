"""Front ends: text, presets and flags -> plans."""
