"""Example genlatent plugin.

genlatent imports this package through the ``genlatent.plugins`` entry point and calls
:func:`register`; every part registered inside the call is attributed to this distribution
(``genlatent-example``), which ``genlatent plugins`` and saved models record.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register() -> None:
    """Register this plugin's parts (called once by genlatent, on first registry lookup)."""
    from .parts import register_all

    register_all()
