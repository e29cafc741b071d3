"""jobfleet cancel, resubmit, rm, watch."""

from __future__ import annotations

import json

from helpers import wait_until

WAIT_FOR_GO = "touch started; while [ ! -e ../go ]; do sleep 0.02; done"


def _subjobs(jf, job: str) -> list[dict]:
    return json.loads(jf("status", job, "--json").out)["subjobs"]


def _running(jf, job: str) -> bool:
    return any(s["status"] == "running" for s in _subjobs(jf, job))


def test_cancel_some_then_all(jf, write_spec, tmp_path):
    assert jf("submit", write_spec("c", WAIT_FOR_GO, n=4)).code == 0
    wait_until(lambda: _running(jf, "c"), what="subjob 0 to run")
    result = jf("cancel", "c", "--subjobs", "0,2-3")
    assert result.code == 0 and "cancelled 3 subjob(s) of c" in result.err
    subjobs = _subjobs(jf, "c")
    assert [(s["status"], s["reason"]) for s in subjobs] == [
        ("failed", "cancelled"),
        (subjobs[1]["status"], None),
        ("failed", "cancelled"),
        ("failed", "cancelled"),
    ]
    assert subjobs[1]["status"] in ("submitted", "running")
    assert "cancelled 1 subjob(s)" in jf("cancel", "c").err
    assert "nothing to cancel" in jf("cancel", "c").err
    assert not (tmp_path / "c" / "2" / "started").exists()  # queued ones never ran


def test_cancel_errors(jf, write_spec):
    assert jf("submit", write_spec("ce", "true", n=3), "--watch").code == 0
    for bad in ("x", "3-1", "1,,2", "-1", ""):
        result = jf("cancel", "ce", "--subjobs", bad)
        assert result.code == 2, bad
        assert "Invalid value for '--subjobs'" in result.error_line
    unknown_ids = jf("cancel", "ce", "--subjobs", "2-5")
    assert unknown_ids.code == 1 and "has no subjob(s) 3, 4, 5" in unknown_ids.error_line
    assert "no job 'nope'" in jf("cancel", "nope").error_line


def test_resubmit(jf, write_spec, tmp_path):
    # Subjob 1 fails until the file `fixed` exists.
    script = '[ "$1" != 1 ] || [ -e ../fixed ]'
    assert jf("submit", write_spec("rs", script, n=3), "--watch").code == 1
    assert "nothing to resubmit" not in jf("resubmit", "rs", "--subjobs", "0").err
    (tmp_path / "rs" / "fixed").touch()
    result = jf("resubmit", "rs", "--failed")
    assert result.code == 0 and "resubmitted 1 subjob(s) of rs" in result.err
    assert jf("watch", "rs").code == 0
    assert [s["attempts"] for s in _subjobs(jf, "rs")] == [2, 2, 1]
    assert "nothing to resubmit" in jf("resubmit", "rs").err


def test_resubmit_errors(jf, write_spec, tmp_path):
    assert jf("submit", write_spec("re", WAIT_FOR_GO)).code == 0
    both = jf("resubmit", "re", "--failed", "--subjobs", "0")
    assert both.code == 2 and "either --failed or --subjobs" in both.error_line
    busy = jf("resubmit", "re", "--subjobs", "0")
    assert busy.code == 1 and "still queued or running" in busy.error_line
    unknown = jf("resubmit", "re", "--subjobs", "9")
    assert unknown.code == 1 and "has no subjob(s) 9" in unknown.error_line
    (tmp_path / "re" / "go").touch()


def test_rm(jf, write_spec, tmp_path):
    assert jf("submit", write_spec("r", WAIT_FOR_GO)).code == 0
    refused = jf("rm", "r")
    assert refused.code == 1 and "cancel it first or use --force" in refused.error_line
    forced = jf("rm", "r", "--force")
    assert forced.code == 0 and "removed job r" in forced.err
    assert jf("status", "r").code == 1
    assert (tmp_path / "r").is_dir()  # files stay
    assert "no job 'r'" in jf("rm", "r").error_line


def test_watch(jf, write_spec):
    assert jf("submit", write_spec("w1", "true", n=2)).code == 0
    assert jf("submit", write_spec("w2", '[ "$1" = 0 ]', n=2)).code == 0
    assert jf("watch", "w1", "--interval", "0.1").code == 0
    both = jf("watch", "w1", "w2", "--interval", "0.1")
    assert both.code == 1
    assert "w1: completed" in both.err and "w2: did not complete" in both.err
    quiet = jf("watch", "w2", "--quiet")
    assert quiet.code == 1 and quiet.err == "" and quiet.out == ""
    assert "nothing to watch" in jf("watch").err


def test_watch_errors(jf):
    assert "no job 'ghost'" in jf("watch", "ghost").error_line
    bad = jf("watch", "--interval", "0")
    assert bad.code == 2 and "--interval" in bad.error_line
