"""`hub registration`: the registration service's commands, living with its entrypoints."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from hub.operations.running import configure_logging, run_loops, serve, until_signal

registration_app = typer.Typer(help="Run the registration service: enrolments and filings.", no_args_is_help=True)


@registration_app.command("serve")
def registration_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8420, help="Port to listen on."),
    relay: bool = typer.Option(True, help="Also publish the outbox to Kafka in this process."),
) -> None:
    """Serve the bureau API (enrolment import, filings, status) over HTTP."""
    import threading

    from hub.registration.bootstrap import background, bootstrap
    from hub.registration.entrypoints.http import create_app

    configure_logging()
    reg = bootstrap()
    stop = threading.Event()
    supervisor = background(reg, stop, relay=relay, lag_interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    serve(create_app(reg, supervisor), supervisor, stop, host, port)


@registration_app.command("relay")
def registration_relay() -> None:
    """Publish committed registration changes from the outbox to Kafka until SIGTERM (restarted on faults)."""
    from hub.registration.bootstrap import background, bootstrap

    configure_logging()
    stop = until_signal()
    run_loops(background(bootstrap(), stop, relay=True), stop)


@registration_app.command("import")
def registration_import(
    csv_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Enrolment snapshot CSV (UTF-8)."),
    pool: str = typer.Option(..., help="The 6-digit pool the snapshot belongs to."),
    report: Path = typer.Option(None, help="Write the bad-row report (JSON) here."),
) -> None:
    """Import an enrolment snapshot: good rows applied, bad rows reported with their reason.

    Columns: psn_no, insutype (390/310), enrolled_from, enrolled_to, benefits_from,
    special_populations (';'-separated). Re-importing the same file changes nothing."""
    import json

    from tqdm import tqdm

    from hub.registration.bootstrap import bootstrap

    reg = bootstrap()
    text = csv_file.read_text(encoding="utf-8")
    rows = max(0, text.count("\n") - 1)
    with tqdm(total=rows, unit=" rows", desc=f"importing {csv_file.name}") as bar:
        result = reg.service.import_snapshot(pool, text, progress=bar.update)
    summary = result.as_dict()
    typer.echo(f"{summary['rows_total']} rows: {summary['rows_changed']} applied, {summary['rows_unchanged']} unchanged, "
               f"{summary['rows_bad']} refused")
    for bad in summary["bad_rows"][:20]:
        typer.echo(f"  line {bad['line']}: {bad['code']}: {bad['message']} {bad['person_id_masked']}")
    if report:
        report.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        typer.echo(f"full report: {report}")


def _registration_call(work) -> None:
    """Run a registration use case as the bureau of `pool`; print its answer as JSON."""
    import json

    from hub.registration.bootstrap import bootstrap
    from hub.registration.service_layer.refusals import RegistrationRefused

    try:
        result = work(bootstrap().service)
    except RegistrationRefused as exc:
        typer.echo(json.dumps({"error": {"code": exc.code, "message": exc.message}}, ensure_ascii=False))
        raise typer.Exit(1) from None
    if hasattr(result, "filing_id"):
        result = {"filing_id": result.filing_id, "filing_type": result.filing_type.value,
                  "target_pool": result.target_pool, "valid_from": result.valid_from.isoformat(),
                  "valid_to": result.valid_to.isoformat() if result.valid_to else None, "revoked": result.revoked}
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


def _day(text: str | None):
    from datetime import date as date_type

    return date_type.fromisoformat(text) if text else None


@registration_app.command("file")
def registration_file(
    pool: str = typer.Option(..., help="Your bureau's pool: you act only on its insured."),
    psn_no: str = typer.Option(..., help="The insured person's number."),
    filing_type: str = typer.Option(..., "--type", help="RETIREE_RESETTLED, LONG_TERM_RESIDENT, POSTED_WORKER, "
                                                        "REFERRAL, TEMPORARY_TRIP or EMERGENCY."),
    target: str = typer.Option(..., help="6-digit pool (or province code ending 0000) of the off-site care."),
    valid_from: str = typer.Option(..., "--from", help="First day, yyyy-mm-dd (may be in the past: late filing)."),
    valid_to: str = typer.Option(None, "--to", help="Last day; temporary filings default to 183 days."),
) -> None:
    """Record an off-site filing (备案) for one of your pool's insured."""
    _registration_call(lambda svc: svc.create_filing(pool, psn_no, filing_type, target, _day(valid_from), _day(valid_to)))


@registration_app.command("change-filing")
def registration_change_filing(
    filing_id: str = typer.Argument(...),
    pool: str = typer.Option(..., help="Your bureau's pool."),
    target: str = typer.Option(None, help="New target pool."),
    valid_from: str = typer.Option(None, "--from", help="New first day."),
    valid_to: str = typer.Option(None, "--to", help="New last day."),
    open_ended: bool = typer.Option(False, help="Remove the last day (long-term filings only)."),
) -> None:
    """Change a filing's target or validity."""
    _registration_call(lambda svc: svc.change_filing(pool, filing_id, target, _day(valid_from), _day(valid_to), open_ended))


@registration_app.command("revoke-filing")
def registration_revoke_filing(filing_id: str = typer.Argument(...),
                               pool: str = typer.Option(..., help="Your bureau's pool.")) -> None:
    """Revoke a filing; it stops counting at once."""
    _registration_call(lambda svc: svc.revoke_filing(pool, filing_id))


@registration_app.command("status")
def registration_status(
    pool: str = typer.Option(..., help="Your bureau's pool."),
    psn_no: str = typer.Option(..., help="The insured person's number."),
    region: str = typer.Option(..., help="6-digit pool where care would be given."),
    on: str = typer.Option(..., "--date", help="The day, yyyy-mm-dd."),
) -> None:
    """What is this person's status for care in REGION on DATE: enrolment and filings that count."""
    _registration_call(lambda svc: svc.status(pool, psn_no, region, _day(on)))
