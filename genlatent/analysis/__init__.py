"""Using trained models: inference over datasets, plots, reports."""

_show_progress = False


def show_progress(enabled: bool = True) -> None:
    """Report long passes over a dataset (rows done, elapsed, ETA) on stderr; the CLI turns
    this on (IWAE on 10k examples takes minutes), Python callers stay quiet unless they ask."""
    global _show_progress
    _show_progress = bool(enabled)


def progress_enabled() -> bool:
    return _show_progress
