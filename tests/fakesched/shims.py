"""Executable shims that make a personality's commands callable from ``PATH``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from fakesched.core import STATE_ENV, load_personality

__all__ = ["PACKAGE_ROOT", "install_shims"]

#: The directory holding the ``fakesched`` package (goes on ``PYTHONPATH``).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def install_shims(bin_dir: Path, personality: str, state_dir: Path) -> list[Path]:
    """Write one shim per command of ``personality`` into ``bin_dir``; return their paths.

    Each shim knows its state directory and the package location itself, so it
    also works from an environment that lost the fixture's variables.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for command in load_personality(personality).COMMANDS:
        path = bin_dir / command
        path.write_text(
            "#!/bin/sh\n"
            f"export {STATE_ENV}={shlex.quote(str(state_dir))}\n"
            f'export PYTHONPATH={shlex.quote(str(PACKAGE_ROOT))}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
            f"exec {shlex.quote(sys.executable)} -m fakesched "
            f'{shlex.quote(personality)} {shlex.quote(command)} "$@"\n',
            encoding="utf-8",
        )
        path.chmod(0o755)
        paths.append(path)
    return paths
