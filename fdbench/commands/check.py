"""``fdbench check``: the appendix-claim checks of ``proofs_check``, with the inputs
(--checkpoint, --json, --only) checked before any claim runs, and a progress bar over
the claims on a terminal (one ``checking ID ...`` line per claim off it)."""

from __future__ import annotations

import sys
from typing import Any

from fdbench.argtypes import CHECKPOINT_HELP, checkpoint_arg


class _ClaimProgress:
    """The ``progress(claim_id)`` callback of ``proofs_check``: called before each claim."""

    def __init__(self, total: int) -> None:
        from fdbench.progress import on_terminal

        self.bar = None
        if on_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="claims", unit="claim")
        self.started = False

    def __call__(self, claim_id: str) -> None:
        if self.bar is None:
            print(f"checking {claim_id} ...", file=sys.stderr, flush=True)
            return
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_postfix_str(claim_id)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


def _handler(args: Any) -> int:
    from fdbench.io import check_writable_file

    if args.json_out is not None:          # refused now, not after minutes of checks
        check_writable_file(args.json_out, "--json")
    from fdbench.checkpoint import read_config
    from fdbench.errors import InputError
    from proofs_check.__main__ import main_with_args
    from proofs_check.registry import load_all

    if args.checkpoint is not None:
        read_config(args.checkpoint)
    known = load_all()
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        raise InputError(f"--only: unknown claim id(s) {unknown}; known: {sorted(known)}")
    progress = _ClaimProgress(len(set(args.only)) if args.only else len(known))
    args.progress = progress
    try:
        return main_with_args(args)
    finally:
        progress.close()


def register(commands: Any) -> None:
    from proofs_check.__main__ import build_parser

    parser = commands.add_parser("check", help="decide every appendix claim (proofs_check)")
    build_parser(parser)
    for action in parser._actions:  # one resolver of --checkpoint for every command
        if action.dest == "checkpoint":
            action.type = checkpoint_arg
            action.help = f"{action.help}; {CHECKPOINT_HELP}"
    parser.set_defaults(handler=_handler)
