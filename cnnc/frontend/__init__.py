"""The front end: source text -> syntax tree (parser) -> checked IR (checker)."""
