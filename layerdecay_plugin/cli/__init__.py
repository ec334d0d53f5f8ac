"""``python -m layerdecay_plugin`` (installed as ``layerdecay-inspect``): one
command per question.

- ``inspect CONFIG``: what lr will each layer get? (:mod:`.inspect`)
- ``summary WORK_DIR``: what lr did each layer get in a finished run?
  (:mod:`.summary`)

The forms before the commands still work: ``CONFIG ...`` is ``inspect
CONFIG ...`` and ``--work-dir DIR ...`` is ``summary DIR ...``.
"""
import argparse
import sys
from typing import List, Optional, Sequence

from . import inspect, summary
from .inspect import load_config, missing_plugin_import, wiring_problem

PROG = 'python -m layerdecay_plugin'
_COMMANDS = {'inspect': inspect, 'summary': summary}
_USAGE = ('%(prog)s inspect CONFIG [--cfg-options K=V ...] [--json PATH] '
          '[--plot PATH] [--wide]\n       %(prog)s summary WORK_DIR [--plot PATH]')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, usage=_USAGE,
        description='Layer decay, before and after training: the lr and '
        'weight decay every layer of a config gets (inspect), or what lr '
        'every layer got in a finished training run (summary).',
        epilog='Also: %(prog)s CONFIG ... (= inspect CONFIG ...) and '
        '%(prog)s --work-dir DIR ... (= summary DIR ...).')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     required=True)
    for name, module in _COMMANDS.items():
        module.add_arguments(commands.add_parser(
            name, help=module.HELP, description=module.HELP,
            prog=f'{PROG} {name}'))
    return parser


def _with_command(argv: List[str]) -> List[str]:
    """The arguments in the subcommand form: ``CONFIG ...`` -> ``inspect
    CONFIG ...``, ``--work-dir DIR ...`` -> ``summary DIR ...``."""
    if not argv or argv[0] in _COMMANDS or argv[0] in ('-h', '--help'):
        return argv
    for i, arg in enumerate(argv):
        if arg == '--work-dir' and i + 1 < len(argv):
            return ['summary', argv[i + 1]] + argv[:i] + argv[i + 2:]
        if arg.startswith('--work-dir='):
            return (['summary', arg.split('=', 1)[1]] + argv[:i] +
                    argv[i + 1:])
    return ['inspect'] + argv


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line, in either form.

    Args:
        argv: The arguments; default ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``command`` (``'inspect'`` or ``'summary'``)
        and that command's arguments. Bad arguments exit with argparse's
        status 2 (a CONFIG together with ``--work-dir``, ``--json`` for a
        work dir, a missing config file).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    return _parser().parse_args(_with_command(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m layerdecay_plugin`` and
    ``layerdecay-inspect``.

    Returns:
        int: 0; 1 for what the command could not do; 2 for a config that
        asks for layer decay and would train without it, as for bad
        arguments. The message is printed to stderr without a traceback
        (see each command's ``run``).
    """
    args = parse_args(argv)
    return _COMMANDS[args.command].run(args)


__all__ = ['load_config', 'main', 'missing_plugin_import', 'parse_args',
           'wiring_problem']
