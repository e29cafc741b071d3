"""Running scheduler commands: one place for timeouts, logging, retries and errors.

Every scheduler command jobfleet runs goes through :func:`run_command`. It logs
the command and how long it took, enforces a timeout, retries transient
failures with exponential backoff and jitter, and raises
:class:`~jobfleet.errors.CommandError` (carrying argv, exit code and output)
for everything else. It also counts calls per command name, which is how tests
and benchmarks check that a poll costs one status query.
"""

from __future__ import annotations

import collections
import logging
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tenacity

from jobfleet.errors import CommandError

__all__ = ["CommandResult", "command_calls", "reset_command_calls", "run_command"]

log = logging.getLogger("jobfleet.commands")

_calls: collections.Counter[str] = collections.Counter()
_calls_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def command_calls() -> dict[str, int]:
    """How often each command (by program name) has run in this process."""
    with _calls_lock:
        return dict(_calls)


def reset_command_calls() -> None:
    with _calls_lock:
        _calls.clear()


def _is_transient(err: BaseException) -> bool:
    return isinstance(err, CommandError) and err.transient


def _run_once(
    argv: Sequence[str],
    timeout: float,
    ok_codes: frozenset[int],
    transient: re.Pattern[str] | None,
    cwd: Path | None,
    env: Mapping[str, str] | None,
) -> CommandResult:
    name = Path(argv[0]).name
    with _calls_lock:
        _calls[name] += 1
    start = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        err = CommandError(
            argv,
            None,
            _text(exc.stdout),
            _text(exc.stderr),
            reason=f"timed out after {timeout:g} s",
            transient=True,
        )
        log.warning("%s", err)
        raise err from None
    except OSError as exc:
        raise CommandError(argv, None, reason=f"cannot run it: {exc.strerror}") from None
    seconds = time.monotonic() - start
    log.debug("ran %s in %.3f s (exit %d)", " ".join(argv[:4]), seconds, proc.returncode)
    if proc.returncode not in ok_codes:
        said = proc.stderr + proc.stdout
        is_transient = bool(transient and transient.search(said))
        err = CommandError(argv, proc.returncode, proc.stdout, proc.stderr, transient=is_transient)
        if is_transient:
            log.warning("transient failure, may retry: %s", err)
        raise err
    return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr, seconds)


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    ok_codes: Sequence[int] = (0,),
    transient: re.Pattern[str] | None = None,
    attempts: int = 4,
    max_wait: float = 20.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``argv`` (never through a shell) and return its output.

    A failure whose output matches ``transient``, or a timeout, is retried up
    to ``attempts`` times in all, waiting with exponential backoff and jitter
    (at most ``max_wait`` seconds between tries). Anything else raises
    :class:`CommandError` at once.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_transient),
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=max_wait),
        reraise=True,
    )
    codes = frozenset(ok_codes)
    result: CommandResult = retrying(_run_once, argv, timeout, codes, transient, cwd, env)
    return result
