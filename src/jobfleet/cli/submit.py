"""``jobfleet submit``: load a spec, store the job, hand its subjobs to the backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from jobfleet.cli.common import err_console, long_lived, out_console, state_of
from jobfleet.cli.watch import BackgroundSubmission, watch_jobs
from jobfleet.environment import check_setup
from jobfleet.fleet import Fleet, RetryPolicy, get_driver
from jobfleet.fleet.control import remove
from jobfleet.fleet.driver import Driver, subjob_id_of
from jobfleet.fleet.orchestrator import Progress as FleetProgress
from jobfleet.fleet.runner import RUNNER_LOG
from jobfleet.job import Job
from jobfleet.store import WHOLE_JOB
from jobfleet.workdir import check_job, render_wrapper

if TYPE_CHECKING:
    from jobfleet.spec import JobSpec

__all__ = ["COMMANDS", "submit"]

log = logging.getLogger("jobfleet.cli.submit")

#: Wrapper scripts shown in full by --dry-run; the rest differ only in their arguments.
_SCRIPTS_SHOWN = 3


def _backend(spec: JobSpec, override: str | None) -> tuple[str, dict[str, Any]]:
    """Backend name and options: the spec's options only belong to the spec's backend."""
    name = override or spec.backend_name
    return name, dict(spec.backend_options) if name == spec.backend_name else {}


def _units(job: Job) -> list[Job]:
    return [job.subjobs[i] for i in sorted(job.subjobs)] if job.subjobs else [job]


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", "backend_name", metavar="NAME", help="Run on this backend instead.")
@click.option("--watch", "then_watch", is_flag=True, help="Follow the job until it ends.")
@click.option(
    "--resume",
    "resume_ref",
    metavar="JOB",
    help="Submit what an interrupted submission of stored job JOB left unsubmitted.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show subjobs and wrapper scripts and check the environment; write nothing.",
)
@click.option(
    "--check-env",
    is_flag=True,
    help="Run the job's setup in a clean shell here first; submit nothing if it has problems.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Remove an ended job of the same name from the store first (refused while it runs).",
)
@click.option(
    "--no-runner",
    is_flag=True,
    help="Start no background runner (for the local backend: run 'jobfleet watch' yourself).",
)
@click.pass_context
def submit(
    ctx: click.Context,
    spec_path: Path,
    backend_name: str | None,
    then_watch: bool,
    resume_ref: str | None,
    dry_run: bool,
    check_env: bool,
    replace: bool,
    no_runner: bool,
) -> int:
    """Submit the job described in SPEC (a .toml or .yaml file)."""
    if dry_run and resume_ref:
        raise click.UsageError("--dry-run and --resume cannot be combined", ctx)
    if replace and resume_ref:
        raise click.UsageError("--replace and --resume cannot be combined", ctx)
    from jobfleet.spec import load_spec  # only this command needs the spec loader

    spec = load_spec(spec_path)
    backend, options = _backend(spec, backend_name)
    with long_lived():
        job = spec.to_job()
    if dry_run:
        _dry_run(out_console(), job, get_driver(backend, options), backend)
        return _report_environment(job, quiet_when_fine=False)
    if check_env and _report_environment(job, quiet_when_fine=True):
        return 1
    state = state_of(ctx)
    fleet = state.fleet
    if replace and any(r.name == spec.name for r in fleet.store.list_jobs()):
        remove(fleet, spec.name)  # refuses (one clear line) while anything of it runs
    if resume_ref is not None:
        record = fleet.job_record(resume_ref)
        if record.name != spec.name:
            raise click.ClickException(
                f"job {record.name!r} was not submitted from this spec "
                f"(the spec's job is {spec.name!r})"
            )

        def hand_over(submitter: Fleet, progress: FleetProgress) -> int:
            return submitter.resume_job(record.id, progress=progress)

    else:
        policy = RetryPolicy(spec.max_retries, spec.max_failed_fraction)
        with long_lived():  # the job's description, as big as the job
            record = fleet.store_job(job, backend, options, policy=policy)

        def hand_over(submitter: Fleet, progress: FleetProgress) -> int:
            return submitter.hand_over(record, job, None, progress)

    err = err_console()
    if then_watch:
        # Watch (and on local, run) while the rest is still being submitted.
        err.print(f"submitting job {record.name} (id {record.id}) to {backend}")
        submission = BackgroundSubmission(
            fleet,
            hand_over,
            resume_hint=f"submit the rest with: jobfleet submit {spec_path} --resume {record.name}",
        )
        submission.start()
        return watch_jobs(
            fleet,
            [record.id],
            interval=None,
            quiet=False,
            stop_on_interrupt=True,
            submission=submission,
        )
    with _progress_bar() as bar:
        task = bar.add_task(f"submitting {job.name}", total=len(job.subjobs) or 1)
        count = hand_over(fleet, lambda n: bar.advance(task, n))
    err.print(f"submitted {count} subjob(s) of job {record.name} (id {record.id}) to {backend}")
    if not no_runner and fleet.ensure_runner(record) is not None:
        err.print(f"a background runner follows it; log: {job.working_dir / RUNNER_LOG}")
    err.print(f"follow it with: jobfleet watch {record.name}")
    return 0


def _report_environment(job: Job, *, quiet_when_fine: bool) -> int:
    """Pre-flight: the job's setup run here in a clean shell; one line per problem."""
    problems = check_setup(job.setup_cmds, job.cmd, [p.name for p in job.input_sandbox_files])
    err = err_console()
    for problem in problems:
        err.print(Text(f"error: environment: {problem}"))
    if not problems and not quiet_when_fine:
        err.print("environment check: the setup runs and the command resolves")
    return 1 if problems else 0


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console(),
        transient=True,
    )


def _dry_run(console: Console, job: Job, driver: Driver, backend: str) -> None:
    """Print what submitting would do, touching no file and not the store."""
    check_job(job)
    units = _units(job)
    console.print(
        Text(
            f"job {job.name}: {len(job.subjobs)} subjob(s) on backend {backend}; "
            f"working dir {job.working_dir}; nothing is written (--dry-run)"
        )
    )
    table = Table("subjob", "input files", "args")
    for unit in units:
        sid = subjob_id_of(unit)
        table.add_row(
            "(whole job)" if sid == WHOLE_JOB else str(sid),
            Text("\n".join(unit.input_files) or "-"),
            Text(" ".join(str(a) for a in unit.args) or "-"),
        )
    console.print(table)
    render = getattr(driver, "render_script", None)
    for unit in units[:_SCRIPTS_SHOWN]:
        script = render(unit) if callable(render) else render_wrapper(unit)
        console.print(Text(f"\n==> {unit.working_dir / 'submit.sh'} <==", style="bold"))
        console.out(str(script), highlight=False, end="")
    if len(units) > _SCRIPTS_SHOWN:
        console.print(f"... and {len(units) - _SCRIPTS_SHOWN} more wrapper script(s) like these")


COMMANDS = [submit]
