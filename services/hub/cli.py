"""The `hub` command: one entry point for operators, bureaus and developers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from hub import local_services

app = typer.Typer(
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


@services_app.command("up")
def services_up() -> None:
    """Install what is missing, start what is not running, and wait until each server answers."""
    t0 = time.monotonic()
    try:
        local_services.up(report=typer.echo)
    except local_services.LocalServiceError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"all servers answer ({time.monotonic() - t0:.1f} s). Point the hub at them with:")
    for key, value in local_services.LocalSettings().environment().items():
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

    Exit 0 when settled, 1 when refused or the claim is invalid (the JSON says why)."""
    import json

    from hub.reference.catalogue import CatalogueFileError, load_catalogues
    from hub.reference.policy import PolicyFileError, load_policies
    from hub.settlement.domain.refusals import Refusal
    from hub.settlement.entrypoints import convention
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
        claim = convention.claim_from(document.get("mdtrt"), document.get("feedetail"))
        person = convention.person_from(document.get("psn"), person_ref="preview")
        acc = convention.accumulators_from(document.get("accumulators"), claim.service_date.year)
    except json.JSONDecodeError as exc:
        answer({"infcode": -1, "err_code": "invalid_json", "err_msg": f"{claim_file}: {exc}"}, 1)
    except convention.ConventionError as exc:
        answer({"infcode": -1, "err_code": exc.code, "err_msg": exc.message}, 1)
    result = price_claim(claim, person, policies, catalogues, acc)
    if isinstance(result, Refusal):
        answer({"infcode": -1, "err_code": result.code, "err_msg": result.message}, 1)
    answer({"infcode": 0, "output": convention.settlement_output(result, claim)}, 0)


@app.command("day")
def day() -> None:
    """Play a simulated day of out-of-region settlements, then clear it and write the files."""
    from hub.messaging import ensure_topics

    settings = local_services.LocalSettings()
    bootstrap = os.environ.get("HUB_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    ensure_topics(bootstrap)
    typer.echo(f"topics ready on {bootstrap}.")
    typer.secho(
        "The simulated day is not built yet: the registration, settle-at-treatment and "
        "interregion-clearing services land with issues 3, 4 and 5, the day itself with issue 6.",
        fg=typer.colors.YELLOW,
    )


if __name__ == "__main__":
    app()
