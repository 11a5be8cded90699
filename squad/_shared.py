"""Two helpers every concern uses: a dataset column as a list, and a few ids quoted for a message."""

import datasets

_MAX_IDS_SHOWN = 5


def _column(dataset: datasets.Dataset, name: str) -> list:
    """Return one column as a Python list, read through Arrow (much faster than iterating rows)."""
    return dataset.with_format("arrow")[name].to_pylist()


def _few(ids: list[str], limit: int = _MAX_IDS_SHOWN) -> str:
    """Return up to `limit` ids quoted, with a count of the rest."""
    shown = ", ".join(repr(question_id) for question_id in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
