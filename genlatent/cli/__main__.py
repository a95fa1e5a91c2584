"""``python -m genlatent.cli``: the same as the ``genlatent`` command."""

from .main import main

main()
