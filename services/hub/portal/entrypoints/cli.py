"""`hub portal`: serve the bureau portal, and manage its people (an operator's commands)."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(help="The bureau portal: a regional bureau's finance office in a browser (serve it, manage its people).",
                  no_args_is_help=True)
users = typer.Typer(help="The portal's people: clerks and supervisors of a bureau, and operators.", no_args_is_help=True)
app.add_typer(users, name="user")


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8440, help="Port (the services use 8410-8430).")) -> None:
    """Serve the portal (HUB_PORTAL_CLEARING_URL and HUB_PORTAL_SETTLEMENT_URL say where the
    services are; HUB_PORTAL_BUREAU_TOKENS gives each bureau's token, outside development)."""
    import threading

    import uvicorn

    from hub.portal.bootstrap import background, bootstrap
    from hub.portal.entrypoints.http import create_app

    portal = bootstrap()
    stop = threading.Event()
    supervisor = background(portal, stop)  # the audit events' relay
    typer.echo(f"bureau portal on http://{host}:{port}/ (clearing {portal.settings.clearing_url}, "
               f"settlement {portal.settings.settlement_url}, registration {portal.settings.registration_url})")
    supervisor.start()
    try:
        uvicorn.run(create_app(portal, supervisor), host=host, port=port, log_level="warning")
    finally:
        stop.set()
        supervisor.join(timeout=10)


@users.command("add")
def add(username: str = typer.Argument(..., help="Sign-in name: letters, digits, - _ ."),
        role: str = typer.Option(..., help="clerk (经办), supervisor (审核) or operator (运维)."),
        pool: str = typer.Option("", help="The bureau's pool code (not for operators)."),
        name: str = typer.Option("", help="Display name, e.g. 张会计."),
        password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input "
                                            "(else it is asked for twice, hidden).")) -> None:
    """Add a person, or replace one of that name (a new password unlocks it)."""
    from hub.portal.bootstrap import bootstrap
    from hub.portal.domain.people import Refused, Role
    from hub.portal.service_layer import accounts

    try:
        chosen = Role(role)
    except ValueError:
        typer.secho("error: --role is clerk, supervisor or operator", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    portal = bootstrap()
    bureau = None
    if chosen is not Role.OPERATOR:
        if pool not in portal.bureaus:
            typer.secho(f"error: --pool {pool!r} is no bureau's (the bureaus file lists {', '.join(sorted(portal.bureaus))})",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        bureau = (portal.bureaus[pool][0], pool)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    made = accounts.add_user(portal.repository, portal.hasher, username, name, chosen, bureau, password)
    if isinstance(made, Refused):
        typer.secho(f"error: {made.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    portal.repository.record(portal.clock(), "operator-cli", made.pool, "add_user", made.username, made.role.value)
    typer.echo(f"{made.username}: {made.role.label}, {portal.bureaus[pool][1] if bureau else 'every pool'}")


@users.command("list")
def list_users() -> None:
    """Everyone who may sign in, with their bureau and whether they are locked out."""
    from hub.portal.bootstrap import bootstrap

    portal = bootstrap()
    for u in portal.repository.users():
        locked = f"  locked until {u.locked_until:%Y-%m-%d %H:%M}" if u.locked_until else ""
        typer.echo(f"{u.username:20} {u.role.value:11} {u.pool:7} {u.display_name}{locked}")


@users.command("unlock")
def unlock(username: str) -> None:
    """Lift a lock-out before it ends by itself."""
    from hub.portal.bootstrap import bootstrap
    from hub.portal.service_layer import accounts

    portal = bootstrap()
    if accounts.unlock(portal.repository, username) is None:
        typer.secho(f"error: no user {username}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    portal.repository.record(portal.clock(), "operator-cli", "", "unlock_user", username, "")
    typer.echo(f"{username} unlocked")
