"""`cmcat db ...`: the database URL, schema upgrade and status."""

from __future__ import annotations

import typer

from clustermass.cli._common import STATE, app, console, emit_json, table

db_app = typer.Typer(help="The PostgreSQL database: URL, schema upgrade, status.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("url")
def url(
    libpq: bool = typer.Option(False, "--libpq", help="Print a libpq URL (for psql) instead of a SQLAlchemy one."),
) -> None:
    """Print the database URL (password masked), e.g. for `psql` or pandas."""
    from clustermass.db.engine import resolve_url
    from clustermass.db.urls import mask_url

    out = mask_url(resolve_url(STATE.settings))
    if libpq:
        out = out.replace("postgresql+psycopg2://", "postgresql://", 1)
    print(out)


@db_app.command("upgrade")
def upgrade(json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Create or upgrade the schema to the newest migration (safe to run again)."""
    from clustermass.db import migrate

    before, after = migrate.upgrade(STATE.engine())
    if json_out:
        emit_json({"before": before, "after": after, "changed": before != after})
    elif before == after:
        console.print(f"schema already at revision [bold]{after}[/bold]")
    else:
        console.print(f"schema upgraded from [bold]{before or 'empty'}[/bold] to [bold]{after}[/bold]")


@db_app.command("status")
def status(json_out: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Schema revision, server version and row counts of every table."""
    from clustermass.db import migrate
    from clustermass.db.engine import resolve_url
    from clustermass.db.urls import mask_url

    info = migrate.status(STATE.engine())
    info["url"] = mask_url(resolve_url(STATE.settings))
    if json_out:
        emit_json(info)
        return
    state = "[green]up to date[/green]" if info["up_to_date"] else "[yellow]needs `cmcat db upgrade`[/yellow]"
    console.print(f"database {info['url']}  PostgreSQL {info['server_version']}")
    console.print(f"schema revision {info['current_revision'] or 'none'} (head {info['head_revision']}): {state}")
    rows = [(name, "missing" if n is None else n) for name, n in info["tables"].items()]
    console.print(table("tables", ["table", "rows"], rows))
