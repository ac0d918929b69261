"""The `hub` command: one entry point for operators, bureaus and developers."""

from __future__ import annotations

import os
import time

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
