"""Placeholder: this family is being implemented (see the issue tracker)."""

__all__: list[str] = []
