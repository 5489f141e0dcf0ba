"""Helpers for the tests of one-line errors: `r1 ARGV` in this process, and the shape of its error."""

from __future__ import annotations

from r1.cli import main as r1_main


def r1(capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit status and the non-blank stderr lines of `r1 ARGV` run in this process."""
    capsys.readouterr()
    try:
        rc = r1_main(list(argv))
    except SystemExit as exc:  # argparse
        rc = int(exc.code or 0)
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def one_error(rc: int, err: list[str], *culprits: str) -> str:
    """The single `error: ...` line of a refused command (exit 2), which names every culprit."""
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    for culprit in culprits:
        assert culprit in err[0], (culprit, err[0])
    return err[0]
