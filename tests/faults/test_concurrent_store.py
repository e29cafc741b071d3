"""Two processes submit, cancel, resubmit and watch on one store at once.

For ``JOBFLEET_STRESS_SECONDS`` seconds (default 60) two worker processes
(tests/faults/_store_stress.py, jobfleet's public API, each its own Fleet)
drive small local jobs in the same SQLite store, then a final ``jobfleet
watch`` runs everything to its end. The store must pass SQLite's integrity and
foreign-key checks, hold exactly the subjobs that were submitted, keep one
history row per attempt matching the current one, agree with ``jobfleet status``
counts, show no unit stuck unfinished, and no subjob may have run more often
than it was submitted (each run appends a marker line).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from cli.conftest import db  # noqa: F401
from jobfleet.store import Store
from reliability_report import Reliability

from ._support import run_jobfleet

SECONDS = float(os.environ.get("JOBFLEET_STRESS_SECONDS", "60"))
WORKER = Path(__file__).with_name("_store_stress.py")


def _query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_two_processes_share_one_store(
    db: Path,  # noqa: F811
    tmp_path: Path,
    reliability: Reliability,
) -> None:
    """Two processes submit, cancel, resubmit and watch small local jobs on one store for
    a minute; SQLite integrity, row counts, attempt history and marker files all agree."""
    (tmp_path / "marks").mkdir()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(db),
                str(tmp_path),
                tag,
                str(SECONDS),
                str(seed),
                str(tmp_path / f"{tag}.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for tag, seed in (("a", 1), ("b", 2))
    ]
    outputs = [w.communicate(timeout=SECONDS + 120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    summaries = [json.loads((tmp_path / f"{t}.json").read_text()) for t in ("a", "b")]
    final = run_jobfleet("watch", "--quiet", "--interval", "0.2", timeout=180)

    submitted = {k: v for s in summaries for k, v in s["submitted"].items()}
    ops = sum((Counter(s["ops"]) for s in summaries), Counter())
    errors = [e for s in summaries for e in s["errors"]]
    integrity = _query(db, "PRAGMA integrity_check")
    foreign = _query(db, "PRAGMA foreign_key_check")
    jobs = {str(name): int(jid) for jid, name in _query(db, "SELECT id, name FROM jobs")}
    rows = _query(db, "SELECT job_id, subjob_id, status, reason, attempt FROM subjobs")
    history = Counter((r[0], r[1]) for r in _query(db, "SELECT job_id, subjob_id FROM attempts"))
    current = {
        (r[0], r[1]): r[2]
        for r in _query(
            db,
            "SELECT a.job_id, a.subjob_id, a.status FROM attempts a JOIN subjobs s"
            " ON a.job_id = s.job_id AND a.subjob_id = s.subjob_id AND a.attempt = s.attempt",
        )
    }
    by_job: dict[int, list[tuple[object, ...]]] = {}
    for row in rows:
        by_job.setdefault(int(str(row[0])), []).append(row)
    names = {jid: name for name, jid in jobs.items()}
    runs = {
        p.name.rsplit(".", 2)[0] + "." + p.name.rsplit(".", 2)[1]: len(p.read_text().splitlines())
        for p in (tmp_path / "marks").glob("*.mark")
    }
    wrong, twice = [], []
    for jid, job_rows in by_job.items():
        name = names[jid]
        if sorted(int(str(r[1])) for r in job_rows) != list(range(submitted.get(name, -1))):
            wrong.append(f"{name}: subjob rows do not match the {submitted.get(name)} submitted")
        for _, sid, status, reason, attempt in job_rows:
            key = (jid, sid)
            if status not in ("completed", "failed") or (
                status == "failed" and reason != "cancelled"
            ):
                wrong.append(f"{name}.{sid}: {status} ({reason})")
            if history[key] != attempt or (attempt and current.get(key) != status):
                wrong.append(f"{name}.{sid}: {history[key]} history rows for attempt {attempt}")
            if runs.get(f"{name}.{sid}", 0) > int(str(attempt)):
                twice.append(f"{name}.{sid}")
            if status == "completed" and runs.get(f"{name}.{sid}", 0) == 0:
                wrong.append(f"{name}.{sid}: completed without running")
    shown = json.loads(run_jobfleet("status", "--json").out)["jobs"]
    status_mismatch = [
        j["name"]
        for j in shown
        if j["counts"] != dict(Counter(str(r[2]) for r in by_job.get(j["id"], [])))
        or j["total"] != submitted.get(j["name"])
    ]
    total_ops = sum(n for kind, n in ops.items() if "refused" not in kind)
    reliability.record(
        backend="local",
        cases=len(rows),
        unit="subjobs",
        faults=ops["cancel"] + ops["resubmit"],
        lost=len(wrong) + len(status_mismatch),
        duplicated=len(twice),
        detail=(
            f"2 processes for {SECONDS:.0f} s: {total_ops} operations "
            f"({', '.join(f'{n} {k}' for k, n in sorted(ops.items()))}); "
            f"{len(jobs)} jobs"
        ),
    )
    assert errors == [], errors[0] if errors else ""
    assert final.code in (0, 1), final.err  # 1: some subjobs were cancelled
    assert integrity == [("ok",)] and foreign == []
    assert set(jobs) == set(submitted)
    assert len(shown) == len(jobs)
    assert (wrong, twice, status_mismatch) == ([], [], [])
    assert ops["submit"] > 0 and ops["cancel"] > 0 and ops["watch"] > 0


ROUNDS = 200


def test_processes_open_a_new_store_at_once(tmp_path: Path, reliability: Reliability) -> None:
    """Two processes open the same brand-new store file at the same instant, 200 times;
    every open succeeds (SQLite does not busy-wait for the switch to WAL mode)."""
    failures: list[str] = []
    for round_ in range(ROUNDS):
        path = tmp_path / f"fresh{round_}.db"
        start, go = os.pipe()
        children = []
        for k in range(2):
            pid = os.fork()
            if pid == 0:  # the child: wait for the start, open, write, exit
                code = 1
                try:
                    os.read(start, 1)
                    with Store(path) as store:
                        store.add_job(f"j{k}", description={}, backend="local")
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        os.write(go, b"go")  # both children start together
        for pid in children:
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                failures.append(path.name)
        os.close(start)
        os.close(go)
    reliability.record(
        backend="local",
        cases=2 * ROUNDS,
        unit="store opens",
        lost=len(failures),
        detail="two processes opening one new store file at the same instant",
    )
    assert failures == []
