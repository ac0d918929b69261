"""`hub settlement`, `hub settle`, `hub claims` and `hub policy`: the settle-at-treatment service's
commands, living with its entrypoints (the `hub` command adds them)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from hub.operations.running import configure_logging, run_loops, serve, until_signal

REFERENCE_DIR = Path(__file__).resolve().parents[4] / "reference"
settlement_app = typer.Typer(help="Run the settle-at-treatment service.", no_args_is_help=True)
settle_app = typer.Typer(help="Settle bills: preview a claim from files alone.", no_args_is_help=True)
claims_app = typer.Typer(help="Manual claims (零星报销): a home bureau's, or an agency's (代办) on the insured's "
                              "behalf, over the settlement service's API.", no_args_is_help=True)
policy_app = typer.Typer(help="Policy drafts: what a draft would have cost (what-if replay).", no_args_is_help=True)


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
    from hub.settlement.service_layer.reasons import Why
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
            raise convention.ConventionError(Why.INVALID_JSON, "the claim file is a JSON object")
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

    configure_logging()
    hub = bootstrap()
    stop = threading.Event()
    # With several HTTP workers the loops run here and the workers read their state from this file.
    state_file = Path(tempfile.mkdtemp(prefix="hub-settlement-")) / "loops.json"
    os.environ["HUB_LOOP_STATE_FILE"] = str(state_file)
    supervisor = background(hub, stop, relay=relay, read_model=read_model, state_file=state_file,
                            lag_interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    serve(create_app(hub, supervisor), supervisor, stop, host, port,
           "hub.settlement.entrypoints.http:app_from_env", http_workers)


@settlement_app.command("relay")
def settlement_relay() -> None:
    """Publish committed settlement events from the outbox to Kafka until SIGTERM (restarted on faults)."""
    from hub.settlement.bootstrap import background, bootstrap

    configure_logging()
    stop = until_signal()
    run_loops(background(bootstrap(), stop, relay=True, read_model=False), stop)


@settlement_app.command("read-model")
def settlement_read_model(until_ready: bool = typer.Option(False, help="Stop once caught up.")) -> None:
    """Keep the Redis read model (registrations, policies, catalogues) up to date from Kafka."""
    from hub.settlement.bootstrap import background, bootstrap
    from hub.settlement.entrypoints.read_model_consumer import ReadModelConsumer

    configure_logging()
    hub = bootstrap()
    stop = until_signal()
    if until_ready:  # a one-off: it fails loudly instead of retrying
        ReadModelConsumer(hub.settings.kafka_bootstrap, hub.read_model, hub.codec,
                          hub.producer("settlement-read-model-dlq"), stop).run(until_ready=True)
        return
    run_loops(background(hub, stop, relay=False, read_model=True), stop)
