"""Small helpers for the words the CLI, the window and the reports print."""


def count_noun(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 piece", "0 pieces", "3 pieces"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
