"""The ``genlatent`` command: a click group, and the error handling every command shares.

User errors (:class:`genlatent.GenlatentError`, missing files, bad options) print one line
``Error: ...`` on stderr and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import GenlatentError, TrainingInterrupted

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _interrupted_line(exc: TrainingInterrupted, argv: list[str]) -> str:
    """One line: where training stopped, what was kept, and the exact command that goes on
    (this command with ``--resume`` and without ``--overwrite``, shell-quoted)."""
    import shlex

    args = [a for a in argv[1:] if a != "--overwrite"]
    if exc.checkpoint is None:
        again = shlex.join(["genlatent", *args])
        return ("Interrupted before the first training step: nothing was trained; "
                f"run again with: {again}")
    if "--resume" not in args:
        args.append("--resume")
    again = shlex.join(["genlatent", *args])
    return (f"Interrupted at epoch {exc.epoch}, step {exc.step}: kept {exc.checkpoint}; "
            f"continue with: {again}")


class OneLineUsageError(click.ClickException):
    """A usage error shown as one line ``Error: ... (see 'genlatent CMD --help')``, exit 2,
    instead of click's usage block."""

    exit_code = 2

    @classmethod
    def of(cls, exc: click.UsageError) -> OneLineUsageError:
        where = exc.ctx.command_path if exc.ctx is not None else "genlatent"
        return cls(f"{exc.format_message()} (see '{where} --help')")


def _one_line_usage(exc: click.UsageError) -> bool:
    """Every usage error but a bare group name (which shows its help, as click does)."""
    return not isinstance(exc, click.exceptions.NoArgsIsHelpError)


class GenlatentGroup(click.Group):
    """A click group that turns user errors into one-line messages and exit status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if not _one_line_usage(exc):
                raise
            raise OneLineUsageError.of(exc) from None

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not _one_line_usage(exc):
                raise
            raise OneLineUsageError.of(exc) from None
        except TrainingInterrupted as exc:  # Ctrl-C / SIGTERM: stopped at a safe point
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(_interrupted_line(exc, sys.argv), err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except (GenlatentError, OSError) as exc:  # missing, unreadable, full: the user's to fix
            if ctx.find_root().params.get("debug"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"Error: {message}", err=True)
            ctx.exit(2)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Commands in workflow order (train, evaluate, ...), not alphabetically."""
        return list(self.commands)


@click.group(cls=GenlatentGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genlatent")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """genlatent: autoencoders and VAEs for scientific data in HDF5 files.

    Results go to stdout, progress to stderr; user errors are one line and exit status 2.

    \b
    Examples:
      genlatent train datasets/samples/fashion_mnist_2k.h5 --epochs 10 --out runs/quick
      genlatent evaluate runs/quick datasets/samples/fashion_mnist_test_500.h5
      genlatent plot runs/quick datasets/samples/fashion_mnist_test_500.h5
      genlatent sample runs/quick -n 64 --out runs/quick/samples.h5
      genlatent plugins
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    from ..analysis import show_progress

    show_progress()  # long passes over a dataset (evaluate, encode, plot) say how far they are
    if debug:  # details the one-line errors leave out, e.g. the traceback of a failed plugin
        _log_details()


def _log_details() -> None:
    """Send genlatent's DEBUG log records (not other libraries') to stderr."""
    import logging

    logger = logging.getLogger("genlatent")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _add_commands() -> None:
    """Attach every command (each module imports only click at the top: --help stays fast)."""
    from .data import data_group
    from .evaluate import evaluate_command
    from .generate import (
        decode_command,
        encode_command,
        interpolate_command,
        reconstruct_command,
        sample_command,
    )
    from .inspect import info_command, plugins_command
    from .plot import plot_command
    from .report import report_command
    from .train import train_command

    for command in (
        train_command,
        evaluate_command,
        encode_command,
        decode_command,
        reconstruct_command,
        sample_command,
        interpolate_command,
        plot_command,
        report_command,
        data_group,
        plugins_command,
        info_command,
    ):
        cli.add_command(command)


_add_commands()


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="genlatent", standalone_mode=True))


if __name__ == "__main__":
    main()
