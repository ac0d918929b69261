"""The `hub` command: one entry point for operators, bureaus and developers."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from hub import settings
from hub.development import local_services
from hub.clearing.entrypoints.cli import clearing_app
from hub.portal.entrypoints.cli import app as portal_app
from hub.registration.entrypoints.cli import registration_app
from hub.settlement.entrypoints.cli import claims_app, policy_app, settle_app, settlement_app


class _Hub(typer.Typer):
    """The `hub` app: a service refused a missing or sample secret ends with its message and
    exit status 2, not a traceback."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except settings.UnsafeSecret as exc:
            typer.secho(f"error: refusing to start: {exc}", fg=typer.colors.RED, err=True)
            raise SystemExit(2) from None


app = _Hub(
    help="Cross-region settlement clearing hub: settle out-of-region bills under the home "
    "region's rules and net the funds every day.",
    no_args_is_help=True,
)
services_app = typer.Typer(
    help="Start, check and stop local Kafka, Redis and PostgreSQL (no Docker needed).",
    no_args_is_help=True,
)
app.add_typer(services_app, name="services")
REFERENCE_DIR = local_services.REPO_ROOT / "reference"
reference_app = typer.Typer(help="Policies and catalogues: validate and publish them.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")
# Each service's commands live with its entrypoints.
app.add_typer(settlement_app, name="settlement")
app.add_typer(settle_app, name="settle")
app.add_typer(claims_app, name="claims")
app.add_typer(policy_app, name="policy")
app.add_typer(registration_app, name="registration")
app.add_typer(clearing_app, name="clearing")
app.add_typer(portal_app, name="portal")


@services_app.command("up")
def services_up(
    brokers: int = typer.Option(None, "--brokers", help="1 Kafka broker, or a local KRaft cluster of 3 (replication "
                                                        "3, min.insync.replicas 2). Default: as last started here, "
                                                        "else 1; to change it, `hub services down` first."),
) -> None:
    """Install what is missing, start what is not running, and wait until each server answers."""
    import os

    t0 = time.monotonic()
    try:
        if brokers is not None:
            os.environ["HUB_LOCAL_KAFKA_BROKERS"] = str(brokers)
        settings = local_services.LocalSettings()
        local_services.up(settings, report=typer.echo)
    except local_services.LocalServiceError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"all servers answer ({time.monotonic() - t0:.1f} s). Point the hub at them with:")
    for key, value in settings.environment().items():
        typer.echo(f"  export {key}={value}")


@services_app.command("down")
def services_down() -> None:
    """Stop the servers `hub services up` started; anything else is left alone."""
    try:
        local_services.down(report=typer.echo)
    except local_services.LocalServiceError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@services_app.command("status")
def services_status() -> None:
    """Show each local server, where it listens and whether it answers. Exit 1 if any is down."""
    all_up = True
    for state in local_services.status():
        word = "up" if state.running else ("not answering" if state.started_by_us else "stopped")
        all_up &= state.running
        typer.echo(f"{state.name:<11} {word:<14} {state.where:<18} {state.detail}")
    raise typer.Exit(0 if all_up else 1)


@reference_app.command("load")
def reference_load(
    directory: Path = typer.Argument(REFERENCE_DIR, exists=True, file_okay=False,
                                     help="Directory with policies/*.yaml and catalogues/*.csv."),
) -> None:
    """Validate every policy and catalogue, then publish them to the compacted reference topics.

    Nothing is published if any file is wrong (every error is listed). Publishing the same files
    again changes nothing; changing a published version is refused: publish a new version."""
    from tqdm import tqdm

    from hub.messaging import AvroCodec
    from hub.reference.catalogue import CatalogueFileError
    from hub.reference.policy import PolicyFileError
    from hub.registration.entrypoints.reference_load import ReferenceConflict, load_reference

    bootstrap = settings.kafka_bootstrap()
    try:
        report = load_reference(directory, bootstrap, AvroCodec(),
                                progress=lambda it, total, desc: tqdm(it, total=total, desc=desc, unit=" items"))
    except (PolicyFileError, CatalogueFileError, ReferenceConflict) as exc:
        typer.secho(f"error: nothing published.\n{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"policies: {report.policies_published} published, {report.policies_unchanged} already there; "
               f"catalogue items: {report.items_published} published, {report.items_unchanged} already there")


@app.command("lag")
def lag(
    group: list[str] = typer.Option(None, "--group", help="Only these consumer groups (repeatable)."),
    samples: int = typer.Option(5, min=2, max=120, help="Samples over the window."),
    interval: float = typer.Option(2.0, min=0.1, max=60, help="Seconds between samples."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every consumer group's lag per topic and partition, judged by its trend over the window
    (OK / GROWING / STALLED / STOPPED / REWOUND) with an ETA to catch up. Exit 1 if any is not OK."""
    import json
    import math

    from hub.operations.lag import LagState, sample_groups

    bootstrap = settings.kafka_bootstrap()
    rows = sample_groups(bootstrap, group or None, samples=samples, interval_s=interval)

    def eta(value: float | None) -> str:
        if value is None or math.isinf(value):
            return "-" if value is None else "never"
        return f"{value:.0f}s"

    if json_out:
        typer.echo(json.dumps([{**r.__dict__, "state": r.state.value,
                                "eta_s": None if r.eta_s is None or math.isinf(r.eta_s) else r.eta_s} for r in rows],
                              indent=2))
    else:
        typer.echo(f"{'GROUP':<40} {'TOPIC':<26} {'PARTITION':>9} {'CURRENT-OFFSET':>14} {'LOG-END-OFFSET':>14} "
                   f"{'LAG':>8} {'STATE':<8} {'ETA':>6}")
        for r in rows:
            typer.echo(f"{r.group[:40]:<40} {r.topic[:26]:<26} {r.partition:>9} {r.committed:>14} {r.end:>14} "
                       f"{r.lag:>8} {r.state.value:<8} {eta(r.eta_s):>6}")
    raise typer.Exit(0 if all(r.state is LagState.OK for r in rows) else 1)


@app.command("his-check")
def his_check(
    url: str = typer.Option(..., help="The hub's hospital interface, e.g. http://127.0.0.1:8520 (the path is added)."),
    hospital: str = typer.Option(..., help="The hospital's code (fixmedins_code)."),
    pool: str = typer.Option(..., help="The hospital's region (mdtrtarea_admvs), 6 digits."),
    psn_no: str = typer.Option(..., help="An enrolled test person's insurance number (filed to the hospital's region)."),
    paas_token: str = typer.Option(..., envvar="HUB_HIS_CHECK_PAAS_TOKEN", help="The hospital's paas token "
                                   "(better from the environment than the command line)."),
    paasid: str = typer.Option("", help="x-tif-paasid; the hospital code when empty."),
    certno: str = typer.Option("", help="The person's resident id number: 1101 then looks them up by it."),
    insutype: str = typer.Option("390", help="390 residents, 310 employees."),
    home_pool: str = typer.Option("", help="insuplc_admdvs: the person's home region."),
    item: str = typer.Option("110001000020000", help="A code of the treatment pool's catalogue for the fee lines."),
    json_out: Path = typer.Option(None, "--json", help="Also write the report as JSON here."),
) -> None:
    """Run a HIS's day and month against any hub deployment, as a vendor would before switching a
    real HIS to it, and print a report per transaction (exit 1 when any check failed).

    Every answer is read as public HIS code reads it (hsa-his, openhis, nhis-web): the envelope
    (infcode the string "0" or "-1", inf_refmsgid, timestamps), each node's fields and formats, and
    that the figures add up. A refusal whose envelope is right is reported, not failed."""
    import json
    from decimal import Decimal

    import httpx

    from hub.his_check.client import PATH, HisClient
    from hub.his_check.scenario import Patient, Scenario

    http = httpx.Client(base_url=url.rstrip("/"), timeout=30)

    def post(path: str, body: bytes, headers: dict) -> tuple[int, dict | bytes]:
        r = http.post(path, content=body, headers=headers)
        if not r.headers.get("content-type", "").startswith("application/json"):
            return r.status_code, r.content
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {"infcode": None, "err_msg": f"not JSON: {r.text[:200]!r}"}

    client = HisClient(post, hospital, "", pool, paasid=paasid or hospital, paas_token=paas_token,
                       insuplc_admdvs=home_pool)
    try:
        report = Scenario(client, Patient(psn_no, insutype, certno, item, Decimal("120.00"))).run()
    except httpx.HTTPError as exc:
        typer.secho(f"error: {url}{PATH} did not answer: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for line in report.lines():
        typer.echo(line)
    if json_out:
        json_out.write_text(json.dumps([s.__dict__ | {"status": s.status} for s in report.steps], ensure_ascii=False,
                                       indent=2), encoding="utf-8")
    raise typer.Exit(1 if report.failed else 0)


@app.command("day")
def day(
    settlements: int = typer.Option(2000, min=1, max=1_000_000, help="Bills to settle."),
    pools: int = typer.Option(7, min=2, max=300, help="Regions taking part (the 7 sample pools first)."),
    hospitals: int = typer.Option(3, min=1, max=50, help="Designated hospitals per region."),
    concurrency: int = typer.Option(8, min=1, max=64, help="Hospitals' requests in flight at once."),
    existing_servers: bool = typer.Option(False, help="Use HUB_KAFKA_BOOTSTRAP / HUB_REDIS_URL / HUB_POSTGRES_URL "
                                                       "instead of starting local servers."),
    out: Path = typer.Option(local_services.REPO_ROOT / "out", help="Where runs write their files."),
    seed: int = typer.Option(20261124, help="Seed of the simulation's random choices."),
    keep: bool = typer.Option(False, "--keep", help="A sandbox for HIS vendors and bureaus: after the day, leave "
                                                    "the services running with the bureau portal, and print their "
                                                    "addresses, the hospitals' credentials, test persons and a "
                                                    "bureau's portal sign-in (on the terminal only); Ctrl-C stops them."),
) -> None:
    """Play a simulated day of out-of-region settlements, then clear it and write every bureau's files.

    Bureaus import enrolments and file registrations; hospitals in other regions settle over the
    national-convention API (with retries and reversals); the clearing service nets the day.
    Ends with a summary: settlements, latency, money moved gross vs net, where the files are."""
    from tqdm import tqdm

    from hub.simulation.day import DayOptions, run_day

    options = DayOptions(settlements=settlements, pools=pools, hospitals_per_pool=hospitals, concurrency=concurrency,
                         existing_servers=existing_servers, out_dir=out, seed=seed)
    summary = run_day(options, echo=typer.echo, hold=_hold_sandbox if keep else None,
                      progress=lambda it, total: tqdm(it, total=total, unit=" bills", desc="settling"))
    if not keep:
        _print_day(summary)


def _hold_sandbox(summary: dict, box: dict) -> None:
    """`hub day --keep`: the summary, then what a vendor needs, then wait for Ctrl-C (or SIGTERM)."""
    import signal
    import threading

    _print_day(summary)
    typer.echo("")
    typer.secho("Sandbox: the services keep running until Ctrl-C", bold=True)
    typer.echo(f"  hospital interface  POST {box['settlement_url']}{box['convention_path']}  (x-tif-* headers, "
               "paasid = the hospital code)")
    typer.echo(f"  bureaus' API        {box['registration_url']} (registration), {box['clearing_url']} (clearing)")
    typer.echo("  hospitals           code, region, level, paas token")
    for h in box["hospitals"]:
        typer.echo(f"    {h['code']}  {h['pool']}  {h['level']:<2}  {h['token']}")
    typer.echo("  test persons        psn_no, resident id, insured in, filed as, to")
    for p in box["persons"]:
        typer.echo(f"    {p['psn_no']}  {p['certno']}  {p['pool']}  {p['filing']:<18} {p['target']}")
    first = box["hospitals"][0]
    person = next((p for p in box["persons"] if p["target"] == first["pool"]), None)
    if person:
        typer.echo(f"  try                 hub his-check --url {box['settlement_url']} --hospital {first['code']} "
                   f"--pool {first['pool']} --psn-no {person['psn_no']}  (HUB_HIS_CHECK_PAAS_TOKEN={first['token']})")
    typer.echo(f"  bureau portal       {box['portal_url']}/  (经办门户: sign in as)")
    for p in box["portal_people"]:
        typer.echo(f"    {p['username']:<20} {p['role']:<11} {p['pool']}  password {p['password']}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    typer.echo("stopping the sandbox's services")


def _print_day(summary: dict) -> None:
    from hub.simulation.interface import fen_to_yuan

    lat = summary["settle_latency_ms"]
    typer.echo("")
    typer.secho(f"Clearing day {summary['clearing_date']}", bold=True)
    typer.echo(f"  settlements        {summary['settlements']:,} settled, {summary['reversals']:,} reversed, "
               f"{sum(summary['refused'].values()):,} refused {summary['refused'] or ''}")
    typer.echo(f"  retries            {summary['retries_answered_identically']:,} re-sent requests answered identically")
    typer.echo(f"  settle latency     p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms "
               f"({summary['bills_per_s']} bills/s end to end, 4 calls per bill: 1101, open, upload, settle)")
    typer.echo(f"  money              gross {fen_to_yuan(summary['gross_fen'])} yuan owed between funds, "
               f"{fen_to_yuan(summary['moved_after_netting_fen'])} yuan moved after netting")
    eff = summary["netting_efficiency"]
    typer.echo(f"  netting efficiency {eff:.1%}" if eff is not None else "  netting efficiency n/a (nothing owed)")
    typer.echo(f"  zero sum           net positions sum to {summary['net_positions_sum_fen']} fen")
    for pool, risk in summary.get("fund_risk", {}).items():
        if risk["level"] != "OK":
            typer.secho(f"  fund risk          {pool} {risk['level']}: off-site spending "
                        + ", ".join(f"{fund} at {pct}%" for fund, pct in risk["funds"].items())
                        + " of its pro-rata budget", fg=typer.colors.YELLOW)
    claims = summary["manual_claims"]
    typer.echo(f"  manual claims      {claims['settled']} paid by home funds to their insured "
               f"({fen_to_yuan(claims['funds_paid_fen'])} yuan, not netted; {summary['manual_claims_in_files']} in the "
               f"bureaus' files; {claims['agency_lodged_then_approved']} lodged by an agency), "
               f"{sum(claims['refused'].values())} refused {claims['refused'] or ''}")
    flags = summary["anomaly_flags"]
    typer.echo("  anomaly flags      " + ", ".join(f"{kind} {n}" for kind, n in flags.items())
               + f"  (against {summary['settled_yesterday']} bills settled yesterday)")
    agree = summary["summary_agrees_with_clearing_files"]
    typer.secho(f"  check              these figures {'agree' if agree else 'DO NOT agree'} with the clearing files",
                fg=typer.colors.GREEN if agree else typer.colors.RED)
    typer.echo(f"  files              {summary['files']}  (summary_{summary['clearing_date']}.html to look at)")
    typer.echo("  bureau portal      hub day --keep leaves the services and the portal (经办门户) running on this "
               "day's data, and prints a bureau's sign-in")
    if not agree or summary["net_positions_sum_fen"] != 0:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
