"""Settings from the environment, with the flat variable names of the run contract."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IdSet = Annotated[frozenset[int], NoDecode]


NEEDS_REDIS = (
    "The worker and the bot replicas share alert rule changes, caches and the scheduler lease through Redis: "
    "set REDIS_URL."
)
NEEDS_SECRET = (
    "Several processes serve this deployment: set SECRET_KEY, the same long random value on each of them "
    "(it encrypts stored MT5 passwords and signs links; a key generated per process could not read the others' data)."
)

NO_TOKEN_HINT = """\
BOT_TOKEN is not set.

  1. Open Telegram, talk to @BotFather, send /newbot and copy the token.
  2. Run again with it:  BOT_TOKEN=123456:ABC... python -m bot run

Want to try it first, offline and without a token?
  python -m bot console      (or ./run.sh console)
"""


NEEDS_TOKEN = "The worker sends the bot's messages: set BOT_TOKEN (the same one the bot replicas use)."

NO_WEBHOOK_SECRET = """\
WEBHOOK_URL is set but WEBHOOK_SECRET is not: refusing to start.

Without it anyone who finds the address could post updates to /webhooks/telegram as any user
(an admin's /grant included). Set WEBHOOK_SECRET to a random value of 1-256 characters from
A-Z, a-z, 0-9, _ and -, for example:  WEBHOOK_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
"""
BAD_WEBHOOK_SECRET = """\
WEBHOOK_SECRET may only hold 1-256 characters from A-Z, a-z, 0-9, _ and - (Telegram refuses anything else).
"""
# Telegram's rule for setWebhook's secret_token: 1-256 characters of A-Z, a-z, 0-9, _ and -.
WEBHOOK_SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,256}")


def webhook_problem(secret: str | None) -> str | None:
    """Why webhook mode cannot start with this WEBHOOK_SECRET (None: it can)."""
    if not secret:
        return NO_WEBHOOK_SECRET
    if WEBHOOK_SECRET_FORMAT.fullmatch(secret) is None:
        return BAD_WEBHOOK_SECRET
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    mt5_backend: Literal["sim", "native", "rpyc"] = "sim"
    mt5_rpyc_host: str = "127.0.0.1"
    mt5_rpyc_port: int = 18812
    mt5_rpyc_pool: str | None = None  # host:port,host:port,…: one terminal each, leased one per live account
    mt5_bridge_secret: SecretStr | None = None  # the bridges' shared secret (required off loopback)
    mt5_terminal_paths: str | None = None  # native (Windows): terminal installations, one child process each
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_public_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_price_basic: str | None = None
    stripe_price_pro: str | None = None
    stripe_price_enterprise: str | None = None
    # consumers' card checkout: off (Stars only in Telegram) or web (also by card on {WEB_PUBLIC_URL}/pay/)
    consumer_card_checkout: Literal["off", "web"] = "off"
    admin_ids: IdSet = frozenset()
    support_ids: IdSet = frozenset()
    secret_key: SecretStr | None = None  # the current key first; old ones after commas (rotation)
    secret_key_old: SecretStr | None = None  # old keys, comma-separated: still read, never used to write
    sentry_dsn: SecretStr | None = None
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text on a terminal, JSON lines otherwise
    data_dir: Path = Field(default=Path("var"))
    workers: Literal["internal", "external"] = "internal"
    broadcast_rate: float = Field(default=25.0, gt=0)  # broadcast messages per second, all broadcasts together
    outbox_rate: float = Field(default=25.0, gt=0)  # proactive messages per second from one process, all together
    outbox_chat_interval: float = Field(default=1.0, ge=0)  # seconds between two messages to one private chat
    outbox_group_per_minute: int = Field(default=20, gt=0)  # messages per minute to one group chat
    outbox_max_attempts: int = Field(default=6, ge=1)  # transient failures (5xx, refused connection) before giving up

    @field_validator("admin_ids", "support_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return value.upper()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'hybrid.db').resolve()}"

    @property
    def embedded_db(self) -> bool:
        return self.db_url.startswith("sqlite")

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def split_problem(self) -> str | None:
        """Why a process of a split deployment (a worker, or a bot replica beside one) cannot start."""
        if self.redis_url is None:
            return NEEDS_REDIS
        if self.secret_key is None:
            return NEEDS_SECRET
        return None

    def start_problem(self, verb: str) -> str | None:
        """Why ``python -m bot run`` (with a token) or ``worker`` refuses to start, or None.

        Settings alone decide it, so ``bot/__main__.py`` asks before the heavy imports and any connection.
        """
        if verb == "worker":
            return NEEDS_TOKEN if self.bot_token is None else self.split_problem()
        if self.workers == "external" and (problem := self.split_problem()) is not None:  # beside a worker
            return f"WORKERS=external: {problem}"
        if self.webhook_url is not None:
            return webhook_problem(self.webhook_secret.get_secret_value() if self.webhook_secret else None)
        return None

    def secret(self) -> bytes:
        """The current secret: SECRET_KEY's first value, or a key generated once into DATA_DIR."""
        return self.secrets()[0]

    def secrets(self) -> tuple[bytes, ...]:
        """Every secret, the current one first, then the old ones still accepted (key rotation).

        ``SECRET_KEY=new,old1,old2`` or ``SECRET_KEY=new`` with ``SECRET_KEY_OLD=old1,old2``: credentials
        are sealed and links signed with the first; anything made under an old one is still read (stored
        credentials are re-sealed under the first at start-up). Without SECRET_KEY: the generated key.
        """
        if self.secret_key is None:
            return (self._generated(create=True),)
        keys = _split(self.secret_key) + (_split(self.secret_key_old) if self.secret_key_old else [])
        if not keys:
            raise ValueError("SECRET_KEY is set but empty")
        path = self.data_dir / "secret.key"  # moving from the generated key to SECRET_KEY keeps its data readable
        if path.exists():
            keys.append(self._generated(create=False))
        return tuple(dict.fromkeys(keys))

    def _generated(self, *, create: bool) -> bytes:
        path = self.ensure_data_dir() / "secret.key" if create else self.data_dir / "secret.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def _split(value: SecretStr) -> list[bytes]:
    return [part.strip().encode() for part in value.get_secret_value().split(",") if part.strip()]
