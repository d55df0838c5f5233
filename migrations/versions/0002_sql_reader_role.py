"""cmcat_reader: the role `cmcat sql` runs as, which can only read cmcat's public tables

Revision ID: 0002_sql_reader_role
Revises: 0001

LOGIN (the embedded server lets it in over its Unix socket by local trust; on an external server
an administrator gives it a password for CMCAT_SQL_DATABASE_URL), NOSUPERUSER, no other role
(so neither pg_read_server_files nor pg_execute_server_program), SELECT on every table in
schema public, and default privileges so that tables this role-owner makes later follow.
A server where cmcat may not create roles keeps working without it: `cmcat sql` then warns.
The role is server-wide; each cmcat database grants it its own tables.
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_sql_reader_role"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = "cmcat_reader"


def _role_exists(conn: sa.Connection) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first() is not None


def _may_create_roles(conn: sa.Connection) -> bool:
    return conn.execute(
        sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar_one()


def upgrade() -> None:
    conn = op.get_bind()
    if not _role_exists(conn):
        if not _may_create_roles(conn):
            return
        op.execute(
            "CREATE ROLE cmcat_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION "
            "NOBYPASSRLS"
        )
    op.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO cmcat_reader")
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cmcat_reader")


def downgrade() -> None:
    conn = op.get_bind()
    if not _role_exists(conn):
        return
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM cmcat_reader")
    op.execute("REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM cmcat_reader")
    still_used = conn.execute(
        sa.text("SELECT 1 FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid WHERE r.rolname = :r"),
        {"r": ROLE},
    ).first()
    if still_used is None and _may_create_roles(conn):  # no other database grants it anything
        op.execute("DROP ROLE cmcat_reader")
