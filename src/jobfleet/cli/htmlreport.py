"""One self-contained HTML page about a job: counts, a timeline of every subjob, failures, slowest.

No script, no network: inline CSS and an inline SVG, so the file can be mailed
or archived and opened anywhere.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from html import escape

from jobfleet.fleet.progress import job_status
from jobfleet.store import STATUS_ORDER, JobRecord, SubjobRecord

__all__ = ["render_report"]

_COLOURS = {
    "init": "#c8c8c8",
    "submitted": "#9ecae1",
    "running": "#3182bd",
    "failed": "#de2d26",
    "completed": "#31a354",
    "queued": "#d9d9d9",
}
_WIDTH = 900
_LABEL = 60
_SLOWEST = 10

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
.counts span { display: inline-block; padding: 0.3em 0.8em; margin: 0 0.4em 0.4em 0;
  border-radius: 4px; color: #fff; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; }
.legend span { display: inline-block; width: 1em; height: 0.8em; margin: 0 0.3em 0 1em; }
svg text { font-size: 10px; fill: #555; }
"""


def _fmt_time(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _fmt_span(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _label(sub: SubjobRecord) -> str:
    return "job" if sub.subjob_id < 0 else str(sub.subjob_id)


def _row_height(count: int) -> int:
    """Pixel height of one subjob's row: readable for a few, still on one screen for many."""
    return 14 if count <= 40 else 8 if count <= 200 else 4 if count <= 1000 else 2


def _title(sub: SubjobRecord) -> str:
    reason = f", {sub.reason}" if sub.reason else ""
    return escape(f"subjob {_label(sub)}: {sub.status}, attempt {sub.attempt}{reason}")


def _timeline(subjobs: Sequence[SubjobRecord], now: float) -> str:
    """Inline SVG: per subjob a grey queued bar, then a bar coloured by outcome.

    A unit seen only queued and then ended (a batch job that ran between two
    polls) has no start time: its whole bar takes the outcome's colour, paler.
    """
    row = _row_height(len(subjobs))
    label_every = max(1, -(-12 // row))  # labels at least 12 px apart
    starts = [s.submitted_at for s in subjobs if s.submitted_at]
    if not starts:
        return "<p>No subjob has been submitted yet.</p>"
    t0 = min(starts)
    ends = [s.finished_at or now for s in subjobs if s.submitted_at]
    span = max(max(ends) - t0, 1e-3)
    scale = (_WIDTH - _LABEL - 10) / span
    height = row * len(subjobs) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'role="img" aria-label="timeline of every subjob">'
    ]
    for i, sub in enumerate(subjobs):
        y = 20 + i * row
        if i % label_every == 0:
            parts.append(f'<text x="0" y="{y + row - 1}">{escape(_label(sub))}</text>')
        if not sub.submitted_at:
            continue
        x0 = _LABEL + (sub.submitted_at - t0) * scale
        if sub.started_at is None and sub.finished_at is not None:
            x2 = _LABEL + (sub.finished_at - t0) * scale
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{max(x2 - x0, 0.5):.1f}" height="{row - 1}" '
                f'fill="{_COLOURS.get(sub.status, "#999")}" fill-opacity="0.55"><title>'
                f"{_title(sub)} (start time unknown)</title></rect>"
            )
            continue
        queued_end = sub.started_at or now
        x1 = _LABEL + (queued_end - t0) * scale
        title = _title(sub)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="{row - 1}" '
            f'fill="{_COLOURS["queued"]}"><title>{title} (queued)</title></rect>'
        )
        if sub.started_at:
            end = sub.finished_at or now
            x2 = _LABEL + (end - t0) * scale
            parts.append(
                f'<rect x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 0.5):.1f}" height="{row - 1}" '
                f'fill="{_COLOURS.get(sub.status, "#999")}"><title>{title}</title></rect>'
            )
    parts.append(
        f'<text x="{_LABEL}" y="12">0</text>'
        f'<text x="{_WIDTH - 60}" y="12">{escape(_fmt_span(span))}</text></svg>'
    )
    return "".join(parts)


def _failures(subjobs: Sequence[SubjobRecord]) -> str:
    failed = [s for s in subjobs if s.status == "failed"]
    if not failed:
        return "<p>No subjob failed.</p>"
    by_reason: dict[str, list[str]] = {}
    for sub in failed:
        by_reason.setdefault(sub.reason or "(no reason recorded)", []).append(_label(sub))
    rows = "".join(
        f"<tr><td>{escape(reason)}</td><td class='num'>{len(ids)}</td>"
        f"<td>{escape(', '.join(ids[:50]) + (' ...' if len(ids) > 50 else ''))}</td></tr>"
        for reason, ids in sorted(by_reason.items(), key=lambda item: -len(item[1]))
    )
    return f"<table><tr><th>reason</th><th>subjobs</th><th>which</th></tr>{rows}</table>"


def _took(sub: SubjobRecord, now: float) -> float:
    """Run time, or time since submission where the start was not seen."""
    begin = sub.started_at or sub.submitted_at or now
    return (sub.finished_at or now) - begin


def _slowest(subjobs: Sequence[SubjobRecord], now: float) -> str:
    ran = [s for s in subjobs if s.started_at or (s.submitted_at and s.finished_at)]
    if not ran:
        return "<p>No subjob has started yet.</p>"
    ran.sort(key=lambda s: _took(s, now), reverse=True)
    rows = "".join(
        f"<tr><td>{escape(_label(s))}</td><td>{escape(s.status)}</td>"
        f"<td class='num'>{escape(_fmt_span(_took(s, now)))}"
        f"{'' if s.started_at else ' *'}</td>"
        f"<td class='num'>{s.attempt}</td><td>{escape(_fmt_time(s.started_at))}</td></tr>"
        for s in ran[:_SLOWEST]
    )
    note = (
        "<p class='meta'>* start not seen: time from submission to end.</p>"
        if any(not s.started_at for s in ran[:_SLOWEST])
        else ""
    )
    return (
        "<table><tr><th>subjob</th><th>status</th><th>run time</th><th>attempts</th>"
        f"<th>started</th></tr>{rows}</table>{note}"
    )


def render_report(record: JobRecord, subjobs: Sequence[SubjobRecord], *, now: float) -> str:
    """The report page for ``record`` with its ``subjobs`` (as read from the store)."""
    counts = Counter(s.status for s in subjobs)
    ordered = {s: counts[s] for s in STATUS_ORDER if counts[s]}
    badges = "".join(
        f'<span style="background:{_COLOURS[s]}">{n} {escape(s)}</span>' for s, n in ordered.items()
    )
    legend = "".join(
        f'<span style="background:{_COLOURS[s]}"></span>{s}'
        for s in ("queued", "running", "completed", "failed")
    )
    name = escape(record.name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>jobfleet report: {name}</title>
<style>{_CSS}</style></head>
<body>
<h1>{name}</h1>
<p class="meta">job id {record.id} &middot; backend {escape(record.backend)} &middot;
submitted {escape(_fmt_time(record.created_at))} &middot; status
<b>{escape(job_status(ordered))}</b> &middot; {len(subjobs)} subjob(s) &middot;
report written {escape(_fmt_time(now))}</p>
<h2>Counts</h2><div class="counts">{badges or "no subjobs"}</div>
<h2>Timeline</h2><p class="legend">{legend}</p>
{_timeline(subjobs, now)}
<h2>Failures</h2>{_failures(subjobs)}
<h2>Slowest subjobs</h2>{_slowest(subjobs, now)}
</body></html>
"""
