"""Timeline files: their model, loading and validation, the time expressions, the linter."""
