"""Jinja2 environment shared by the wrapper script and every backend's templates."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = ["comment_text", "render"]

_HERE = Path(__file__).parent
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def comment_text(value: Any) -> str:
    """Text safe inside a ``#`` comment line: no newline can end the comment early."""
    return _CONTROL.sub("?", str(value))


@cache
def _environment() -> jinja2.Environment:
    # Imported on first render: commands that only read the store never render a script.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([_HERE / "templates", _HERE / "backends" / "templates"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package: no stat() per render
        autoescape=False,  # shell and scheduler text, quoted explicitly with |q
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    env.filters["comment"] = comment_text
    return env


def render(template: str, **context: Any) -> str:
    """Render a template by file name (from ``templates/`` or ``backends/templates/``)."""
    return _environment().get_template(template).render(**context)
