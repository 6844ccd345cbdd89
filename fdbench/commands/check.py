"""``fdbench check``: the appendix-claim checks of ``proofs_check``."""

from __future__ import annotations

from typing import Any


def _handler(args: Any) -> int:
    from proofs_check.__main__ import main_with_args

    return main_with_args(args)


def register(commands: Any) -> None:
    from proofs_check.__main__ import build_parser

    parser = commands.add_parser("check", help="decide every appendix claim (proofs_check)")
    build_parser(parser)
    parser.set_defaults(handler=_handler)
