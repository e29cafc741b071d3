"""jobfleet submit: dry run, background runner, --watch, --resume, --backend, user errors."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from helpers import wait_until
from jobfleet.spec import load_spec
from jobfleet.store import Store


def _status(jf, job: str) -> dict:
    result = jf("status", job, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_dry_run_shows_subjobs_and_scripts_and_writes_nothing(jf, write_spec, db, tmp_path):
    spec = write_spec("dry", 'echo "subjob $1"', n=4)
    result = jf("submit", spec, "--dry-run")
    assert result.code == 0, result.err
    assert "4 subjob(s) on backend local" in result.out
    for i in range(3):
        assert f"dry/{i}/submit.sh" in result.out
    assert "and 1 more wrapper script" in result.out
    assert "jobfleet_finish $?" in result.out  # the wrapper itself is shown
    assert 'echo "subjob $1"' in result.out or "subjob $1" in result.out
    assert not (tmp_path / "dry").exists()
    assert not db.exists()


def test_submit_returns_and_a_background_runner_finishes_the_job(jf, write_spec, tmp_path):
    spec = write_spec("bg", 'echo "out $1"', n=3, backend='name = "local"\nmax_processes = 2')
    result = jf("submit", spec)
    assert result.code == 0, result.err
    assert "submitted 3 subjob(s) of job bg" in result.err
    assert "background runner" in result.err
    wait_until(lambda: _status(jf, "bg")["status"] == "completed", what="bg to complete")
    assert (tmp_path / "bg" / "2" / "stdout").read_text() == "out 2\n"
    assert (tmp_path / "bg" / "jobfleet-runner.log").exists()


def test_submit_watch_exit_codes(jf, write_spec):
    good = jf("submit", write_spec("good", "true", n=2), "--watch")
    assert good.code == 0, good.err
    assert "good: completed" in good.err
    bad = jf("submit", write_spec("bad", '[ "$1" != 1 ]', n=2), "--watch")
    assert bad.code == 1
    assert "bad: did not complete: 1 failed, 1 completed" in bad.err


def test_job_without_subjobs(jf, write_spec):
    result = jf("submit", write_spec("whole", "echo whole", n=0), "--watch")
    assert result.code == 0, result.err
    doc = _status(jf, "whole")
    assert [s["id"] for s in doc["subjobs"]] == [-1]
    assert jf("logs", "whole").out == "whole\n"


def test_retries_from_the_spec(jf, write_spec, tmp_path):
    # Fails on the first attempt only (the count file survives a resubmission).
    script = 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ "$n" -ge 1 ]'
    result = jf("submit", write_spec("flaky", script, n=2, extra="max_retries = 2"), "--watch")
    assert result.code == 0, result.err
    assert [s["attempts"] for s in _status(jf, "flaky")["subjobs"]] == [2, 2]


def test_resume_submits_what_was_left_in_init(jf, write_spec, db):
    spec_path = write_spec("resumed", "true", n=3)
    job = load_spec(spec_path).to_job()
    with Store(db) as store:  # a submission that died before handing anything over
        store.add_job("resumed", description=job.job_dict, backend="local", subjob_ids=[0, 1, 2])
    assert _status(jf, "resumed")["counts"] == {"init": 3}
    result = jf("submit", spec_path, "--resume", "resumed", "--watch")
    assert result.code == 0, result.err
    assert _status(jf, "resumed")["counts"] == {"completed": 3}


def test_resume_errors(jf, write_spec):
    spec = write_spec("one", "true")
    jf("submit", spec, "--watch")
    other = write_spec("two", "true")
    wrong = jf("submit", other, "--resume", "one")
    assert wrong.code == 1
    assert "was not submitted from this spec" in wrong.error_line
    missing = jf("submit", other, "--resume", "nosuchjob")
    assert missing.code == 1 and "no job 'nosuchjob'" in missing.error_line
    both = jf("submit", other, "--resume", "one", "--dry-run")
    assert both.code == 2 and "cannot be combined" in both.error_line


def test_user_errors_are_one_line(jf, write_spec, tmp_path, unimplemented_backend):
    missing = jf("submit", tmp_path / "nope.toml")
    assert missing.code == 1 and "cannot read it" in missing.error_line
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\ncmd = "not a list"\n')
    bad = jf("submit", broken)
    assert bad.code == 1 and "field 'cmd'" in bad.error_line
    spec = write_spec("dup", "true")
    unknown = jf("submit", spec, "--backend", "nosuch")
    assert unknown.code == 1 and "unknown backend 'nosuch'" in unknown.error_line
    later = jf("submit", spec, "--backend", unimplemented_backend)
    assert later.code == 1 and "not implemented yet" in later.error_line
    options = write_spec("opts", "true", backend='name = "local"\nmax_processes = 0')
    bad_options = jf("submit", options)
    assert bad_options.code == 1 and "max_processes" in bad_options.error_line
    assert jf("submit", spec, "--watch").code == 0
    duplicate = jf("submit", spec)
    assert duplicate.code == 1 and "already exists" in duplicate.error_line
    no_arg = jf("submit")
    assert no_arg.code == 2 and "Missing argument 'SPEC'" in no_arg.error_line
    bad_flag = jf("submit", spec, "--bogus")
    assert bad_flag.code == 2 and "No such option" in bad_flag.error_line


def test_backend_override_drops_the_specs_options(jf, write_spec):
    spec = write_spec("over", "true", backend='name = "slurm"\npartition = "x"')
    result = jf("submit", spec, "--backend", "local", "--watch")
    assert result.code == 0, result.err
    assert _status(jf, "over")["backend"] == "local"


def test_input_files_shown_by_dry_run(jf, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.txt").write_text(str(i))
    spec = tmp_path / "files.toml"
    spec.write_text(
        'name = "files"\ncmd = ["cat"]\ninput_files = ["data/*.txt"]\n'
        "[split]\nmax_files_per_subjob = 2\n"
    )
    result = jf("submit", spec, "--dry-run")
    assert result.code == 0, result.err
    assert "2 subjob(s)" in result.out
    assert str(Path(data / "f2.txt")) in result.out


def test_replace_submits_again_under_the_same_name(jf, write_spec, tmp_path):
    marker = tmp_path / "runs"
    spec = write_spec("again", f'echo "$1" >> {marker}', n=2)
    assert jf("submit", spec, "--watch").code == 0
    first_id = _status(jf, "again")["id"]
    replaced = jf("submit", spec, "--watch", "--replace")
    assert replaced.code == 0, replaced.err
    doc = _status(jf, "again")
    assert doc["id"] != first_id and doc["status"] == "completed"
    assert sorted(marker.read_text().split()) == ["0", "0", "1", "1"]  # two full runs
    assert [j for j in jf("list").out.split() if j == "again"] == ["again"]


def test_replace_refuses_while_the_job_runs(jf, write_spec, tmp_path):
    gate = tmp_path / "gate"
    spec = write_spec("busy", f"until [ -e {gate} ]; do sleep 0.05; done", n=1)
    assert jf("submit", spec).code == 0
    refused = jf("submit", spec, "--replace")
    assert refused.code == 1 and "queued or running" in refused.error_line
    conflict = jf("submit", spec, "--replace", "--resume", "busy")
    assert conflict.code == 2 and "cannot be combined" in conflict.error_line
    gate.touch()
    wait_until(lambda: _status(jf, "busy")["status"] == "completed", what="busy to complete")


def test_check_env_reports_problems_one_line_each_and_submits_nothing(jf, tmp_path, db):
    spec = tmp_path / "env.toml"
    spec.write_text(
        'name = "envcheck"\ncmd = ["no-such-program-here"]\nsetup = ["false"]\n'
        '[backend]\nname = "local"\n'
    )
    result = jf("submit", spec, "--check-env")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines == [
        "error: environment: setup line 1 fails in a clean shell: false",
        "error: environment: command 'no-such-program-here' is not found on the job's PATH "
        "after the setup (an alias or shell function of your interactive shell does not "
        "reach jobs)",
    ]
    assert not db.exists() or "envcheck" not in jf("list").out
    dry = jf("submit", spec, "--dry-run")
    assert dry.code == 1 and "setup line 1 fails" in dry.err


def test_check_env_passes_a_captured_virtualenv(jf, tmp_path, fresh_venv, monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", str(fresh_venv))
    spec = tmp_path / "venv.toml"
    spec.write_text(
        'name = "venvjob"\ncmd = ["jf-only-in-venv"]\n[environment]\ncapture = true\n'
        '[backend]\nname = "local"\n'
    )
    result = jf("submit", spec, "--check-env", "--watch")
    assert result.code == 0, result.err
    assert jf("logs", "venvjob").out.strip() == f"prefix {fresh_venv}"
    dry = jf("submit", spec, "--dry-run")
    assert dry.code == 0 and "environment check: the setup runs" in dry.err


def test_submitting_in_process_leaves_the_cycle_collector_as_it_was(jf, write_spec):
    """The heap is frozen only by the `jobfleet` process itself, never in a caller's process."""
    frozen = gc.get_freeze_count()
    result = jf("submit", write_spec("gc", "true", n=3), "--watch")
    assert result.code == 0, result.err
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_the_jobfleet_process_freezes_the_job_before_handing_it_over(write_spec, db):
    """Run as a program, submit keeps the job's objects out of the collections that run
    while its subjobs are prepared and watched."""
    spec = write_spec("frozen", "true", n=50)
    probe = "\n".join(
        [
            "import gc, sys",
            "from jobfleet.cli import main",
            "from jobfleet.fleet.orchestrator import Fleet",
            "hand_over = Fleet.hand_over",
            "def probe(self, *args, **kwargs):",
            "    print('frozen', gc.get_freeze_count(), flush=True)",
            "    return hand_over(self, *args, **kwargs)",
            "Fleet.hand_over = probe",
            "sys.argv = ['jobfleet', '--db', sys.argv[1], 'submit', sys.argv[2], '--no-runner']",
            "main()",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(db), str(spec)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split("frozen", 1)[1].split()[0]) > 1000, done.stdout
