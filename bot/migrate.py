"""Alembic, driven from code: `python -m bot migrate` and the embedded auto-migration.

Every start checks the schema (`run` and `worker` refuse an outdated PostgreSQL;
the embedded SQLite is upgraded). That check needs no alembic: ``head`` reads
the revision ids from alembic/versions (falling back to alembic's own
resolution for anything but one linear chain) and ``current`` reads the
``alembic_version`` table. Alembic itself (with mako and pygments, ~10 MB and a
quarter of a second here) is imported only to migrate.
"""

from __future__ import annotations

import ast
import asyncio
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "alembic" / "versions"
VERSION_TABLE = "alembic_version"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking; env.py runs its own event loop, so call it off the running loop."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)


def head(url: str) -> str | None:
    """The newest revision of this build (what ``upgrade(url)`` reaches)."""
    single = _linear_head(VERSIONS)
    if single is not None:
        return single
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@functools.cache
def _linear_head(versions: Path) -> str | None:
    """The one revision no other revision builds on, when the scripts form one simple chain (else None)."""
    revisions: set[str] = set()
    built_on: set[str] = set()
    for script in versions.glob("*.py"):
        found = _assignments(script)
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            return None  # a merge point, a computed id: alembic knows best
        if found.get("branch_labels") is not None or found.get("depends_on") is not None:
            return None
        revisions.add(revision)
        if down is not None:
            built_on.add(down)
    heads = revisions - built_on
    return heads.pop() if len(heads) == 1 and built_on <= revisions else None


def _assignments(script: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and node.value is not None:  # type: ignore[union-attr]
            try:
                found[target.id] = ast.literal_eval(node.value)  # type: ignore[union-attr,arg-type]
            except ValueError:
                found[target.id] = ...  # not a literal
    return found


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table(VERSION_TABLE)):
            return None
        rows = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the database has several alembic heads: {sorted(rows)}")
    return rows[0] if rows else None
