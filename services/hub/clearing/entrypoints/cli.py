"""`hub clearing`: interregion clearing's commands (its days, files, monthly statements, advances and
quarantine), living with its entrypoints."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from hub.operations.running import configure_logging, serve, until_signal

clearing_app = typer.Typer(help="Run interregion clearing: daily netting and clearing files.", no_args_is_help=True)


@clearing_app.command("consume")
def clearing_consume(
    auto_close: bool = typer.Option(True, help="Close days when their cut-off has passed."),
    max_idle_s: float = typer.Option(None, help="Stop after this many seconds without events."),
) -> None:
    """Consume settlement events into the day's bilateral totals until SIGTERM."""
    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.entrypoints.consumer import ClearingConsumer

    configure_logging()
    consumer = ClearingConsumer(bootstrap(), until_signal(), auto_close=auto_close)
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
    from hub.clearing.service_layer.closing import DayBlocked

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


@clearing_app.command("rebuild")
def clearing_rebuild() -> None:
    """Rebuild clearing's database from the log, after it was lost: run with clearing stopped, on
    an empty database (drop hub_clearing; the schema is made again). Every close, deposit, bureau
    confirmation and monthly statement change published on clearing.statements is carried out
    again at its time, with settlement.events applied as far as each close had read it; each
    closed day's files come back byte for byte (checked against the digests the statements
    published) and nothing is published twice. Needs settlement.events from offset 0 (within its
    retention)."""
    from tqdm import tqdm

    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.entrypoints.rebuild import rebuild
    from hub.clearing.service_layer.rebuilding import RebuildRefused

    configure_logging()
    clearing = bootstrap()
    bars = {"events": tqdm(unit=" events", desc="settlement events"), "days": tqdm(unit=" days", desc="days closed")}
    try:
        done = rebuild(clearing, lambda what, n: bars[what].update(n))
    except RebuildRefused as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        for bar in bars.values():
            bar.close()
    typer.echo(f"rebuilt: {done.days_closed} days closed, {done.events} settlement events read, {done.deposits} "
               f"deposits, {done.confirmations} confirmations, {done.month_changes} monthly statement changes")
    for what, items in (("files differing from their published digest", done.mismatched),
                        ("monthly changes refused when made again", done.refused),
                        ("events quarantined", done.quarantined)):
        if items:
            typer.secho(f"{len(items)} {what}: {', '.join(items[:10])}", fg=typer.colors.RED, err=True)
    if done.mismatched or done.refused:
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

    from hub.clearing.domain.refusals import ClearingRefused

    try:
        result = call(*args, **kwargs)
    except ClearingRefused as exc:
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
    from hub.clearing.domain.refusals import ClearingRefused
    from hub.money import AmountError, yuan_to_fen

    try:
        entry = bootstrap().service.deposit(pool, reference, yuan_to_fen(amount, "amount"), operator, note)
    except (AmountError, ClearingRefused) as exc:
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
    from hub.clearing.domain.refusals import ClearingRefused

    if apply == discard:
        typer.secho("error: say --apply or --discard", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        result = bootstrap().service.resolve(source, "APPLY" if apply else "DISCARD", operator, note)
    except ClearingRefused as exc:
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

    from hub.clearing.bootstrap import bootstrap
    from hub.clearing.entrypoints.background import background
    from hub.clearing.entrypoints.http import create_app
    from hub.operations.status import StatusHistory

    configure_logging()
    clearing = bootstrap()
    stop = threading.Event()
    history = StatusHistory()
    supervisor = background(clearing, stop, history, consume=consume, relay=relay,
                            interval_s=float(os.environ.get("HUB_STATUS_INTERVAL_S", "15")))
    serve(create_app(clearing, history, supervisor), supervisor, stop, host, port)
