"""The `hub` command: one entry point for operators, bureaus and developers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from hub import local_services, settings

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
settle_app = typer.Typer(help="Settle bills: preview a claim from files alone.", no_args_is_help=True)
app.add_typer(settle_app, name="settle")
REFERENCE_DIR = local_services.REPO_ROOT / "reference"
reference_app = typer.Typer(help="Policies and catalogues: validate and publish them.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")
registration_app = typer.Typer(help="Run the registration service: enrolments and filings.", no_args_is_help=True)
app.add_typer(registration_app, name="registration")
clearing_app = typer.Typer(help="Run interregion clearing: daily netting and clearing files.", no_args_is_help=True)
app.add_typer(clearing_app, name="clearing")
settlement_app = typer.Typer(help="Run the settle-at-treatment service.", no_args_is_help=True)
app.add_typer(settlement_app, name="settlement")
claims_app = typer.Typer(help="Manual claims (零星报销): a home bureau's, or an agency's (代办) on the insured's "
                                "behalf, over the settlement service's API.", no_args_is_help=True)
app.add_typer(claims_app, name="claims")
policy_app = typer.Typer(help="Policy drafts: what a draft would have cost (what-if replay).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
from hub.portal.entrypoints.cli import app as portal_app  # noqa: E402  (lives with its service)

app.add_typer(portal_app, name="portal")


@policy_app.command("replay")
def policy_replay(
    policy: Path = typer.Option(..., "--policy", exists=True, dir_okay=False, help="The draft policy (YAML, as in "
                                "reference/policies): its pool and insurance type choose the bills."),
    first: str = typer.Option(..., "--from", help="First business date, yyyy-mm-dd."),
    last: str = typer.Option(..., "--to", help="Last business date, yyyy-mm-dd."),
    out: Path = typer.Option(Path("out/replay"), help="Where the report (JSON and HTML) is written."),
    top: int = typer.Option(20, help="How many of the most-changed bills to list."),
) -> None:
    """Re-price a pool's settled off-site bills under a draft policy with the same engine, and
    report per treatment pool and per fund what they cost as settled and under the draft, the
    patients' shares, and the bills that change most (reads the settlement database and its read
    model, like the settle service: HUB_POSTGRES_URL, HUB_SETTLEMENT_DATABASE, HUB_REDIS_URL)."""
    import json
    from datetime import date as date_type

    from tqdm import tqdm

    from hub.reference.policy import PolicyFileError, load_policy_file
    from hub.settlement.bootstrap import bootstrap
    from hub.settlement.entrypoints import replay_report
    from hub.settlement.entrypoints.what_if_http import replay_document

    try:
        draft = load_policy_file(policy)
        begin, end = date_type.fromisoformat(first), date_type.fromisoformat(last)
    except PolicyFileError as exc:
        typer.secho(f"error: the draft is not a valid policy:\n{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.secho(f"error: {exc} (dates are yyyy-mm-dd)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    hub = bootstrap(create_schema=False, gateway_secrets=False)  # answers no hospital: needs none of their secrets
    with tqdm(unit=" bills", desc=f"replaying {draft.pool_code}") as bar:
        def counted(n: int) -> None:
            bar.total = n
            bar.refresh()

        document = replay_document(hub, draft, begin, end, top, progress=bar.update, total=counted)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"replay_{draft.policy_version}_{begin.isoformat()}_{end.isoformat()}"
    (out / f"{stem}.json").write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / f"{stem}.html").write_text(replay_report.render(document), encoding="utf-8")
    before, after = document["total"]["before"], document["total"]["after"]
    typer.echo(f"{before['bills']:,} bills of {draft.pool_code} re-priced under {draft.policy_version}")
    for code in before["funds"]:
        typer.echo(f"  {code}  as settled {before['funds'][code] / 100:>16,.2f}  under the draft "
                   f"{after['funds'][code] / 100:>16,.2f}  change {(after['funds'][code] - before['funds'][code]) / 100:>+14,.2f}")
    typer.echo(f"  patients  as settled {before['psn_part_amt_fen'] / 100:>16,.2f}  under the draft "
               f"{after['psn_part_amt_fen'] / 100:>16,.2f}")
    if document["skipped"] or document["refused_under_draft"]:
        typer.echo(f"  not re-priced {document['skipped']}; refused under the draft {document['refused_under_draft']}")
    typer.echo(f"report: {out / stem}.html (and .json)")


_CLAIMS_URL = typer.Option("http://127.0.0.1:8410", "--url", envvar="HUB_SETTLEMENT_URL",
                            help="The settle-at-treatment service.")
_CLAIMS_TOKEN = typer.Option(..., "--token", envvar="HUB_CLAIMS_TOKEN",
                             help="The bureau's or agency's API token (or HUB_CLAIMS_TOKEN).")


def _claims_http(url: str, token: str):
    import httpx

    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _claim_line(answer: dict) -> str:
    """One claim's outcome in a line."""
    if "error" in answer:
        e = answer["error"]
        return f"REFUSED  {e['code']}: {e['message']}"
    if answer["status"] == "SETTLED":
        return (f"SETTLED  bill {answer['medfee_sumamt']}: funds pay the insured {answer['fund_pay_sumamt']} "
                f"(basic {answer['hifp_pay']}, serious illness {answer['hifmi_pay']}, assistance {answer['maf_pay']}), "
                f"own share {answer['psn_part_amt']}  [{answer['filing_status']}, {answer['policy_version']}]")
    return f"{answer['status']:<8} bill {answer['medfee_sumamt']} ({answer['lines']} lines), lodged by {answer['lodged_by']}"


@claims_app.command("submit")
def claims_submit(
    claims_file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                       help="JSON: one claim, or a list of claims (see README: manual claims)."),
    url: str = _CLAIMS_URL, token: str = _CLAIMS_TOKEN,
    report: Path = typer.Option(None, help="Write every claim's whole answer (JSON) here."),
) -> None:
    """Submit manual claims. A home bureau's are priced at once; an agency's wait for the home
    bureau. Every refused fee line is listed with its reason; a refused claim changes nothing, and
    submitting the same file again answers the same (claims are idempotent by claim number).
    Exits 1 when any claim was refused."""
    import json

    from tqdm import tqdm

    loaded = json.loads(claims_file.read_text(encoding="utf-8"))
    claims = loaded if isinstance(loaded, list) else [loaded]
    answers = []
    with _claims_http(url, token) as http:
        for claim in tqdm(claims, unit=" claims", desc=f"submitting {claims_file.name}", disable=len(claims) < 20):
            answers.append(http.post("/v1/claims", json=claim).json())
    refused = 0
    for claim, answer in zip(claims, answers):
        number = claim.get("claim_no", "?") if isinstance(claim, dict) else "?"
        typer.echo(f"{number:<24} {_claim_line(answer)}")
        for line in answer.get("error", {}).get("refused_lines", []):
            typer.echo(f"    line {line['line']}: {line['reason']}: {line['message']}")
        refused += "error" in answer
    typer.echo(f"{len(claims)} claims: {len(claims) - refused} accepted, {refused} refused")
    if report:
        report.write_text(json.dumps(answers, ensure_ascii=False, indent=2), encoding="utf-8")
        typer.echo(f"full report: {report}")
    if refused:
        raise typer.Exit(1)


@claims_app.command("list")
def claims_list(status: str = typer.Option(None, help="LODGED, SETTLED or REJECTED."),
                url: str = _CLAIMS_URL, token: str = _CLAIMS_TOKEN) -> None:
    """A bureau's insured's claims, or the claims an agency lodged, newest first."""
    with _claims_http(url, token) as http:
        answer = http.get("/v1/claims", params={"status": status} if status else None).json()
    if "error" in answer:
        typer.echo(_claim_line(answer))
        raise typer.Exit(1)
    for c in answer["claims"]:
        typer.echo(f"{c['home_pool']} {c['claim_no']:<24} {_claim_line(c)}")


@claims_app.command("decide")
def claims_decide(home_pool: str = typer.Argument(...), claim_no: str = typer.Argument(...),
                  approve: bool = typer.Option(None, "--approve/--reject", help="Price it, or refuse it (with --note)."),
                  note: str = typer.Option("", help="Why (required to reject)."),
                  url: str = _CLAIMS_URL, token: str = _CLAIMS_TOKEN) -> None:
    """The home bureau decides a claim an agency lodged: --approve prices it, --reject --note "…" refuses it."""
    if approve is None:
        raise typer.BadParameter("say --approve or --reject")
    with _claims_http(url, token) as http:
        answer = http.post(f"/v1/claims/{home_pool}/{claim_no}/decision",
                           json={"decision": "APPROVE" if approve else "REJECT", "note": note}).json()
    typer.echo(f"{claim_no:<24} {_claim_line(answer)}")
    if "error" in answer:
        raise typer.Exit(1)


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


@settle_app.command("preview")
def settle_preview(
    claim_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Claim JSON (format in the README)."),
    reference: Path = typer.Option(REFERENCE_DIR, "--reference", exists=True, file_okay=False,
                                   help="Directory with policies/ and catalogues/."),
) -> None:
    """Compute a settlement from files alone (no servers) and print it in the interface's field names.

    With a top-level "manual": {"reason": "NOT_FILED"} (or HOSPITAL_NOT_CONNECTED, ROUTED_HOME,
    COUNTER_DOWN) the bill is priced as a manual claim at the home bureau (零星报销), as the claims
    route prices it: unfiled or late-filed care at the policy's unfiled terms, serious illness the
    counter routes home paid.

    Exit 0 when settled, 1 when refused or the claim is invalid (the JSON says why)."""
    import json

    from hub.reference.catalogue import CatalogueFileError, load_catalogues
    from hub.reference.policy import PolicyFileError, load_policies
    from hub.settlement.domain.refusals import Refusal
    from hub.settlement.service_layer import convention
    from hub.settlement.service_layer.pricing import newest_catalogues, price_claim

    def answer(body: dict, code: int) -> None:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        raise typer.Exit(code)

    try:
        policies = load_policies(reference / "policies")
        catalogues = newest_catalogues(load_catalogues(reference / "catalogues"))
    except (PolicyFileError, CatalogueFileError) as exc:
        typer.secho(f"error: reference data refused:\n{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    try:
        document = json.loads(claim_file.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise convention.ConventionError("invalid_json", "the claim file is a JSON object")
        manual = convention.manual_claim(document.get("manual"))
        claim = convention.claim_from(document.get("mdtrt"), document.get("feedetail"), manual=manual)
        person = convention.person_from(document.get("psn"), person_ref="preview")
        acc = convention.accumulators_from(document.get("accumulators"), claim.service_date.year)
    except json.JSONDecodeError as exc:
        answer({"infcode": "-1", "err_code": "invalid_json", "err_msg": f"{claim_file}: {exc}"}, 1)
    except convention.ConventionError as exc:
        answer({"infcode": "-1", "err_code": exc.code, "err_msg": exc.message}, 1)
    result = price_claim(claim, person, policies, catalogues, acc)
    if isinstance(result, Refusal):
        answer({"infcode": "-1", "err_code": result.code, "err_msg": result.message}, 1)
    from datetime import datetime

    shown = {"psn_no": convention.mask_person_id(str(document["psn"].get("psn_no", ""))), "certno": "",
             "psn_name": "", "brdy": "", "psn_cert_type": "", "gend": "", "age": ""}
    context = convention.SettlementContext("preview", shown, person.insurance_type, None, "preview", datetime.now(),
                                           claim.treatment_pool)
    output = convention.settlement_output(result, claim, context)
    if manual:  # priced as the home bureau prices the claim (READINGS.md 37), not as the counter would
        output["hub_manual_claim"] = {"reason": document["manual"]["reason"], "home_pool": person.home_pool}
    answer({"infcode": "0", "output": output}, 0)


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


def _logging() -> None:
    from hub.operations.logs import configure_logging

    configure_logging()


@settlement_app.command("serve")
def settlement_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8410, help="Port to listen on."),
    relay: bool = typer.Option(True, help="Also publish the outbox to Kafka in this process."),
    read_model: bool = typer.Option(True, help="Also keep the Redis read model up to date in this process."),
    http_workers: int = typer.Option(1, "--workers", min=1, max=32,
                                     help="HTTP worker processes (the relay and read model run once, here)."),
) -> None:
    """Serve the hospital interface (national convention) over HTTP."""
    import tempfile
    import threading

    from hub.settlement.bootstrap import background, bootstrap
    from hub.settlement.entrypoints.http import create_app

    _logging()
    hub = bootstrap()
    stop = threading.Event()
    # With several HTTP workers the loops run here and the workers read their state from this file.
    state_file = Path(tempfile.mkdtemp(prefix="hub-settlement-")) / "loops.json"
    os.environ["HUB_LOOP_STATE_FILE"] = str(state_file)
    supervisor = background(hub, stop, relay=relay, read_model=read_model, state_file=state_file,
                            lag_interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    _serve(create_app(hub, supervisor), supervisor, stop, host, port,
           "hub.settlement.entrypoints.http:app_from_env", http_workers)


@settlement_app.command("relay")
def settlement_relay() -> None:
    """Publish committed settlement events from the outbox to Kafka until SIGTERM (restarted on faults)."""
    from hub.settlement.bootstrap import background, bootstrap

    _logging()
    stop = _until_signal()
    _run_loops(background(bootstrap(), stop, relay=True, read_model=False), stop)


@settlement_app.command("read-model")
def settlement_read_model(until_ready: bool = typer.Option(False, help="Stop once caught up.")) -> None:
    """Keep the Redis read model (registrations, policies, catalogues) up to date from Kafka."""
    from hub.settlement.bootstrap import background, bootstrap
    from hub.settlement.entrypoints.read_model_consumer import ReadModelConsumer

    _logging()
    hub = bootstrap()
    stop = _until_signal()
    if until_ready:  # a one-off: it fails loudly instead of retrying
        ReadModelConsumer(hub.settings.kafka_bootstrap, hub.read_model, hub.codec,
                          hub.producer("settlement-read-model-dlq"), stop).run(until_ready=True)
        return
    _run_loops(background(hub, stop, relay=False, read_model=True), stop)


def _run_loops(supervisor, stop) -> None:
    """Run a service's background loops (restarted on faults) until SIGTERM/SIGINT."""
    supervisor.start()
    stop.wait()
    supervisor.join(timeout=10)


def _serve(app, supervisor, stop, host: str, port: int, factory: str | None = None, http_workers: int = 1) -> None:
    """Start the background loops, serve HTTP until SIGTERM/SIGINT, then stop the loops.
    With several HTTP workers uvicorn builds the app in each from `factory`; loops run once, here."""
    import uvicorn

    # No X-Forwarded-* rewriting: the hub reads no client address, and uvicorn's proxy-headers
    # middleware cost ~2.5 % of an HTTP worker's CPU on every call (py-spy, whole bills).
    options = dict(host=host, port=port, log_level="warning", access_log=False, log_config=None, proxy_headers=False)
    supervisor.start()
    try:
        if http_workers > 1 and factory:
            uvicorn.run(factory, factory=True, workers=http_workers, **options)
        else:
            uvicorn.run(app, **options)
    finally:
        stop.set()
        supervisor.join(timeout=10)


def _until_signal():
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


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

    _logging()
    reg = bootstrap()
    stop = threading.Event()
    supervisor = background(reg, stop, relay=relay, lag_interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    _serve(create_app(reg, supervisor), supervisor, stop, host, port)


@registration_app.command("relay")
def registration_relay() -> None:
    """Publish committed registration changes from the outbox to Kafka until SIGTERM (restarted on faults)."""
    from hub.registration.bootstrap import background, bootstrap

    _logging()
    stop = _until_signal()
    _run_loops(background(bootstrap(), stop, relay=True), stop)


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


@clearing_app.command("consume")
def clearing_consume(
    auto_close: bool = typer.Option(True, help="Close days when their cut-off has passed."),
    max_idle_s: float = typer.Option(None, help="Stop after this many seconds without events."),
) -> None:
    """Consume settlement events into the day's bilateral totals until SIGTERM."""
    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.entrypoints.consumer import ClearingConsumer

    _logging()
    consumer = ClearingConsumer(bootstrap(), _until_signal(), auto_close=auto_close)
    consumer.run(max_idle_s=max_idle_s)
    typer.echo(f"handled {consumer.loop.handled} events, dead-lettered {consumer.loop.dead_lettered}, "
               f"quarantined {consumer.loop.poisoned}")


@clearing_app.command("close")
def clearing_close(day: str = typer.Option(..., "--date", help="Clearing day, yyyy-mm-dd (Asia/Shanghai).")) -> None:
    """Close a clearing day now: net it, check the zero sum, write every bureau's files.
    Closing a closed day changes nothing and rewrites the same bytes."""
    from datetime import date as date_type

    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.domain.netting import ZeroSumViolated
    from hub.clearing.service_layer.services import DayBlocked

    clearing = bootstrap()
    try:
        result = clearing.service.close_day(date_type.fromisoformat(day))
    except (ZeroSumViolated, DayBlocked) as exc:
        typer.secho(f"error: {exc}; nothing was published", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if result.already_closed:
        typer.echo(f"{day} was already closed (cycle {result.cycle_id}); files rewritten unchanged")
    else:
        n = result.netting
        typer.echo(f"closed {day}: {len(n.positions)} pools, gross {n.obligations_fen / 100:,.2f} yuan, "
                   f"moved after netting {n.net_abs_fen / 200:,.2f} yuan, efficiency {float(n.efficiency):.1%} "
                   f"({', '.join(f'{step} {seconds:.1f} s' for step, seconds in result.phases.items())})")
    typer.echo(f"files in {clearing.settings.out_dir / day}")


@clearing_app.command("verify")
def clearing_verify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Any file of a bureau's file set "
                                "(.csv, .json, .xlsx, .sha256 or .sig); the others are found beside it."),
    public_key: list[str] = typer.Option([], help="The hub's SM2 public key (hex, from GET /v1/clearing/public-key) "
                                         "or a file holding it; repeat it for the keys a rotation retired "
                                         "(GET /v1/clearing/public-keys). Without it, only integrity is checked, "
                                         "not authorship."),
) -> None:
    """Check that a clearing file set is the hub's and unchanged: the SM2 signature over its
    SHA-256 manifest, then each file's digest. Exit 0 when verified, 1 when not."""
    from hub.signing import verify_file_set

    keys = [Path(k).read_text(encoding="utf-8").strip() if Path(k.strip()).is_file() else k.strip()
            for k in public_key if k.strip()]
    result = verify_file_set(file, keys or None)
    if result.ok:
        typer.secho(result.message, fg=typer.colors.GREEN)
        for name in result.files:
            typer.echo(f"  ok  {name}")
        return
    typer.secho(f"NOT verified: {result.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@clearing_app.command("public-key")
def clearing_public_key() -> None:
    """Print the hub's SM2 public key the clearing files are signed with (give it to bureaus)."""
    from hub.signing import signer_from_reference
    from hub.clearing.bootstrap import Settings

    typer.echo(signer_from_reference(Settings().signing_key_ref).public_key_hex)


month_app = typer.Typer(help="Monthly statements: issue them, confirm or dispute lines, resolve disputes, close.",
                        no_args_is_help=True)
clearing_app.add_typer(month_app, name="month")


def _statement_call(call, *args, **kwargs):
    import json

    from hub.clearing.domain.statements import StatementError

    try:
        result = call(*args, **kwargs)
    except StatementError as exc:
        typer.secho(f"error: {exc.code}: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    return result


def _months():
    from hub.clearing.bootstrap import bootstrap

    return bootstrap().service.months


@month_app.command("issue")
def month_issue(month: str = typer.Argument(..., help="yyyy-mm; every day of it must be closed."),
                operator: str = typer.Option(os.environ.get("USER", "operator"), help="Who issues.")) -> None:
    """Issue every home bureau's statement of a month (issuing again adds nothing twice)."""
    _statement_call(_months().issue, month, operator)


@month_app.command("show")
def month_show(month: str = typer.Argument(..., help="yyyy-mm"), pool: str = typer.Argument(..., help="Bureau pool.")) -> None:
    """A statement with its totals, advance top-up and every line's state."""
    import json

    found = _months().show(month, pool)
    if found is None:
        typer.secho(f"no {month} statement for {pool}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(found, ensure_ascii=False, indent=2))


@month_app.command("lines")
def month_lines(
    month: str = typer.Argument(..., help="yyyy-mm"), pool: str = typer.Argument(..., help="Bureau pool."),
    action: str = typer.Argument(..., help="confirm, unconfirm, dispute or withdraw."),
    event_ids: list[str] = typer.Argument(None, help="The lines (settlement event ids)."),
    all_pending: bool = typer.Option(False, "--all-pending", help="Confirm every pending line."),
    reason: str = typer.Option("", help="Why a line is disputed (required for dispute)."),
    who: str = typer.Option(os.environ.get("USER", "bureau"), help="Who acts."),
) -> None:
    """A bureau's action on lines of its issued statement: all of them, or none if one cannot."""
    _statement_call(_months().act, month, pool, action, event_ids or [], reason, who, all_pending)


@month_app.command("resolve")
def month_resolve(month: str = typer.Argument(...), pool: str = typer.Argument(...),
                  event_id: str = typer.Argument(..., help="The disputed line."),
                  note: str = typer.Option(..., help="How it was resolved."),
                  operator: str = typer.Option(os.environ.get("USER", "operator"))) -> None:
    """Record a dispute's resolution; the line is carried into the bureau's next statement."""
    _statement_call(_months().resolve, month, pool, event_id, note, operator)


@month_app.command("close")
def month_close(month: str = typer.Argument(...), pool: str = typer.Argument(...),
                who: str = typer.Option(os.environ.get("USER", "operator"))) -> None:
    """Close a statement with no pending line; its signed files are written."""
    _statement_call(_months().close, month, pool, who)


advance_app = typer.Typer(help="Advance funds (预付金): each bureau's balance at the clearing centre.",
                          no_args_is_help=True)
clearing_app.add_typer(advance_app, name="advance")


@advance_app.command("show")
def advance_show(pool: str = typer.Argument(..., help="The bureau's pool code."),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A bureau's advance: balance, what the rule asks it to hold, top-up due, and its ledger."""
    import json

    from hub.clearing.bootstrap import bootstrap

    found = bootstrap().service.advance(pool)
    if found is None:
        typer.secho(f"no advance kept for {pool} yet (it starts with the first closed day it is in)", err=True)
        raise typer.Exit(1)
    if json_out:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{pool}: balance {found['balance_fen'] / 100:,.2f} yuan, required {found['required_fen'] / 100:,.2f}"
               f"{', LOW: top-up due ' + format(found['top_up_fen'] / 100, ',.2f') if found['warning'] else ''}")
    for e in found["ledger"]:
        typer.echo(f"  {e['clearing_date']}  {e['kind']:<8} {e['amount_fen'] / 100:>16,.2f}  "
                   f"balance {e['balance_fen'] / 100:>16,.2f}  {e['reference']}")


@advance_app.command("deposit")
def advance_deposit(
    pool: str = typer.Argument(..., help="The bureau's pool code."),
    amount: str = typer.Argument(..., help="Yuan the bureau paid in, e.g. 500000.00."),
    reference: str = typer.Option(..., help="The payment's reference (a repeat with it changes nothing)."),
    note: str = typer.Option("", help="Kept with the entry."),
    operator: str = typer.Option(os.environ.get("USER", "operator"), help="Who records it."),
) -> None:
    """Record money a bureau paid into its advance at the clearing centre."""
    import json

    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.service_layer.services import AdvanceError
    from hub.money import AmountError, yuan_to_fen

    try:
        entry = bootstrap().service.deposit(pool, reference, yuan_to_fen(amount, "amount"), operator, note)
    except (AmountError, AdvanceError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(entry, ensure_ascii=False))


quarantine_app = typer.Typer(help="Events clearing could not apply: list them, re-apply or discard them.",
                              no_args_is_help=True)
clearing_app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(all_: bool = typer.Option(False, "--all", help="Also the resolved ones."),
                    json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Quarantined settlement events: each blocks closing its day (and later days) until resolved.
    Exit 1 while any is unresolved."""
    import json

    from hub.clearing.bootstrap import bootstrap

    rows = bootstrap().service.quarantined(include_resolved=all_)
    if json_out:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            state = r["resolution"] or "UNRESOLVED"
            typer.echo(f"{r['source']:<28} {state:<10} day {r['business_date'] or '?':<10} "
                       f"{r['home_pool'] or '?'}<-{r['treatment_pool'] or '?'}  {r['reason'][:120]}")
        if not rows:
            typer.echo("no quarantined events")
    raise typer.Exit(1 if any(r["resolved_at"] is None for r in rows) else 0)


@quarantine_app.command("resolve")
def quarantine_resolve(
    source: str = typer.Argument(..., help="The event's topic:partition:offset, as `list` shows it."),
    apply: bool = typer.Option(False, "--apply", help="Apply the event again (after fixing what made it fail)."),
    discard: bool = typer.Option(False, "--discard", help="Leave it out of clearing for good (say why with --note)."),
    note: str = typer.Option("", help="Why; kept with the resolution."),
    operator: str = typer.Option(os.environ.get("USER", "operator"), help="Who resolves it."),
) -> None:
    """Resolve a quarantined event, so its day can close."""
    import json

    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.service_layer.services import QuarantineError

    if apply == discard:
        typer.secho("error: say --apply or --discard", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        result = bootstrap().service.resolve(source, "APPLY" if apply else "DISCARD", operator, note)
    except QuarantineError as exc:
        typer.secho(f"error: {exc.code}: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result, ensure_ascii=False))


@clearing_app.command("serve")
def clearing_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8430, help="Port to listen on."),
    consume: bool = typer.Option(True, help="Also consume settlement events in this process."),
    relay: bool = typer.Option(True, help="Also publish clearing statements to Kafka in this process."),
) -> None:
    """Serve bureaus their clearing files over HTTP (and consume and relay, by default)."""
    import threading

    from hub.clearing.bootstrap import background, bootstrap
    from hub.clearing.entrypoints.http import create_app
    from hub.operations.status import StatusHistory

    _logging()
    clearing = bootstrap()
    stop = threading.Event()
    history = StatusHistory()
    supervisor = background(clearing, stop, history, consume=consume, relay=relay,
                            interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    _serve(create_app(clearing, history, supervisor), supervisor, stop, host, port)


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
    from hub.simulation.day import fen_to_yuan

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
