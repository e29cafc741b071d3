"""The ``conformance`` session fixture: every backend of :data:`BACKENDS` runs its jobs at once.

All backends run concurrently (one thread each, driving ``jobfleet`` commands),
so the whole suite takes about as long as the slowest walltime enforcement
(real Slurm: 1-2 minutes). A backend whose real scheduler is not here is
skipped (or fails in CI) through the fixture named in its ``needs``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from backends.sge_fixture import sge_cell  # noqa: F401
from conformance.cases import BACKENDS, Case
from conformance.driver import DEADLINE, PATHS, Outcome, run_backend
from fakesched.core import STATE_ENV, load_personality
from fakesched.fixture import _pythonpath, running_fake


class Conformance:
    """The runs of every backend, started together; :meth:`outcome` waits for one."""

    def __init__(
        self, runs: dict[tuple[str, str], Future[Outcome]], unavailable: dict[str, BaseException]
    ) -> None:
        self.runs = runs
        self.unavailable = unavailable

    def outcome(self, case: Case, path: str) -> Outcome:
        if case.id in self.unavailable:
            raise self.unavailable[case.id]  # the needs fixture's skip (or CI failure)
        outcome = self.runs[case.id, path].result(timeout=DEADLINE + 60)
        if outcome.error:
            pytest.fail(f"{case.id} ({path}): the conformance run did not finish: {outcome.error}")
        return outcome


def _selected(session: pytest.Session) -> set[tuple[str, str]]:
    """The (backend, path) pairs whose tests will run (``-k local-cli`` runs only that one)."""
    wanted: set[tuple[str, str]] = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("outcome") if callspec is not None else None
        if isinstance(param, tuple):
            wanted.add((param[0].id, param[1]))
    return wanted


@pytest.fixture(scope="session")
def conformance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Conformance]:
    root = tmp_path_factory.mktemp("conformance")
    unavailable: dict[str, BaseException] = {}
    with contextlib.ExitStack() as stack:
        envs = {}
        selected = _selected(request.session)
        for case in BACKENDS:
            if not any(cid == case.id for cid, _ in selected):
                continue
            if case.needs:
                try:
                    request.getfixturevalue(case.needs)
                except (pytest.skip.Exception, pytest.fail.Exception) as why:
                    unavailable[case.id] = why
                    continue
            env = {**os.environ, **dict(case.env)}
            if case.fake:
                fake = stack.enter_context(running_fake(case.fake, root / case.id / "fakesched"))
                if case.fake_config:
                    configure = getattr(load_personality(case.fake), f"configure_{case.fake}")
                    configure(fake, **dict(case.fake_config))
                env["PATH"] = f"{fake.bin_dir}{os.pathsep}{env['PATH']}"
                env.update({"PYTHONPATH": _pythonpath(), STATE_ENV: str(fake.state_dir)})
            envs[case.id] = env
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, len(selected))))
        by_id = {case.id: case for case in BACKENDS}
        runs = {
            (cid, path): pool.submit(run_backend, by_id[cid], path, root / cid / path, env)
            for cid, path in selected
            if (env := envs.get(cid)) is not None
        }
        yield Conformance(runs, unavailable)
        for future in runs.values():  # nothing may outlive the session, not even a stuck run
            with contextlib.suppress(Exception):
                future.result(timeout=DEADLINE + 60)


@pytest.fixture(
    params=[(case, path) for case in BACKENDS for path in PATHS],
    ids=[f"{case.id}-{path}" for case in BACKENDS for path in PATHS],
)
def outcome(request: pytest.FixtureRequest, conformance: Conformance) -> Outcome:
    """The finished run of one backend and path (each test runs once per pair)."""
    case, path = request.param
    return conformance.outcome(case, path)


__all__ = ["Conformance", "conformance", "outcome"]
