"""jobfleet status, list, logs, backends and report."""

from __future__ import annotations

import json
import re

from helpers import wait_until


def test_empty_store(jf):
    assert jf("list").out.strip() == "no jobs in the store"
    assert jf("status").out.strip() == "no jobs in the store"
    assert json.loads(jf("status", "--json").out) == {"jobs": []}


def test_status_and_list(jf, write_spec):
    assert jf("submit", write_spec("mixed", '[ "$1" != 2 ]', n=3), "--watch").code == 1
    table = jf("status")
    assert table.code == 0
    assert re.search(r"mixed .* local .* failed .* 3 .* 1 failed, 2 completed", table.out)
    listed = jf("list")
    assert re.search(r"1 .* mixed .* local .* failed .* 3", listed.out)
    one = jf("status", "mixed")
    assert "3 subjob(s): 1 failed, 2 completed" in one.out
    assert re.search(r"2 .* 1 .* 1 .* exit code 1", one.out)  # subjob, attempts, exit code, reason
    by_id = jf("status", "1")
    assert by_id.out == one.out
    jobs = json.loads(jf("status", "--json").out)["jobs"]
    assert [(j["name"], j["status"], j["total"]) for j in jobs] == [("mixed", "failed", 3)]


def test_status_json_of_one_job(jf, write_spec):
    jf("submit", write_spec("js", '[ "$1" = 0 ]', n=2), "--watch")
    doc = json.loads(jf("status", "js", "--json").out)
    assert doc["name"] == "js" and doc["status"] == "failed"
    assert doc["counts"] == {"failed": 1, "completed": 1}
    first, second = doc["subjobs"]
    assert first == first | {"id": 0, "status": "completed", "exit_code": 0, "attempts": 1}
    assert second["reason"] == "exit code 1" and second["native_id"] == "local"
    assert set(first) >= {"id", "status", "exit_code", "attempts", "reason", "native_id"}


def test_status_unknown_job(jf):
    result = jf("status", "ghost")
    assert result.code == 1 and "no job 'ghost'" in result.error_line


def test_logs(jf, write_spec):
    spec = write_spec("talk", 'echo "out $1"; echo "err $1" >&2', n=2)
    assert jf("submit", spec, "--watch").code == 0
    assert jf("logs", "talk", "1").out == "out 1\n"
    assert jf("logs", "talk", "1", "--stderr").out == "err 1\n"
    assert jf("logs", "talk").out == "==> subjob 0 <==\nout 0\n==> subjob 1 <==\nout 1\n"
    assert jf("logs", "talk", "0", "--follow").out == "out 0\n"  # ended: prints and returns


def test_logs_follow_while_running(jf, write_spec, tmp_path):
    spec = write_spec("tail", "echo first; while [ ! -e ../go ]; do sleep 0.02; done; echo last")
    assert jf("submit", spec).code == 0
    wait_until(lambda: (tmp_path / "tail" / "0" / "stdout").exists(), what="unit to start")
    (tmp_path / "tail" / "go").touch()
    assert jf("logs", "tail", "0", "-f").out == "first\nlast\n"


def test_logs_errors(jf, write_spec):
    assert jf("submit", write_spec("few", "true", n=2), "--watch").code == 0
    unknown = jf("logs", "few", "7")
    assert unknown.code == 1 and "has no subjob 7" in unknown.error_line
    follow_all = jf("logs", "few", "--follow")
    assert follow_all.code == 2 and "--follow needs a SUBJOB" in follow_all.error_line
    not_a_number = jf("logs", "few", "x")
    assert not_a_number.code == 2 and "'x' is not a valid integer" in not_a_number.error_line
    assert jf("logs", "nojob").code == 1


def test_logs_before_a_unit_ran(jf, write_spec, tmp_path):
    spec = write_spec("later", "while [ ! -e ../go ]; do sleep 0.02; done", n=2)
    assert jf("submit", spec).code == 0
    result = jf("logs", "later", "1")  # max_processes 1: subjob 1 waits for subjob 0
    assert result.code == 0 and "(no stdout yet: subjob is submitted)" in result.err
    (tmp_path / "later" / "go").touch()


def test_backends(jf, unimplemented_backend):
    result = jf("backends")
    assert result.code == 0
    assert re.search(r"local\s+.*yes", result.out)
    assert re.search(rf"{unimplemented_backend}\s+.*no\s+.*not implemented yet", result.out)
    doc = json.loads(jf("backends", "--json").out)
    assert {"name": "local", "usable": True, "why_not": ""} in doc
    assert [d["name"] for d in doc][:7] == [
        "local",
        "slurm",
        "htcondor",
        "lsf",
        "pbs",
        "sge",
        "dirac",
    ]


def test_html_report_is_self_contained(jf, write_spec, tmp_path):
    spec = write_spec("rep", '[ "$1" != 3 ] || { echo boom >&2; exit 7; }', n=5)
    assert jf("submit", spec, "--watch").code == 1
    page_path = tmp_path / "report.html"
    result = jf("report", "rep", "--html", page_path)
    assert result.code == 0, result.err
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<svg" in page and page.count("<rect") >= 10  # queued and running bar per subjob
    assert "1 failed" in page and "4 completed" in page
    assert "exit code 7" in page  # the failure reason
    assert "Slowest subjobs" in page
    # Nothing is loaded from elsewhere: no scripts, links, external sources.
    assert not re.search(r"<script|<link|<img|src=|href=|@import|url\(", page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]


def test_report_errors(jf, tmp_path):
    assert jf("report", "ghost", "--html", tmp_path / "r.html").code == 1
    missing_option = jf("report", "ghost")
    assert missing_option.code == 2 and "--html" in missing_option.error_line
