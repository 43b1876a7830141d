"""Thin CLI sub-commands, one module per bounded context. They parse, call and print."""
