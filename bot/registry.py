"""The command registry: every command is declared once, here.

Each entry names the command, the factory of the router that serves it, the
tier or feature it needs, its description msgid, its category, whether it
is served in private chats only (account and money commands) and which of its
uses move money or link an account (``money``: those wait for the risk
disclosure). /help, the /start menu, ``setMyCommands`` (per language), the
tier gate and the disclosure gate are all generated from this list, so a
command cannot be half-registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from aiogram import Router
from aiogram.types import Message

from bot.i18n import N_
from domain.tiers import Feature, Tier, TierCatalog
from domain.users import Role


class Category(StrEnum):
    CORE = "core"
    TRADING = "trading"
    BUSINESS = "business"


CATEGORY_TITLES: dict[Category, str] = {
    Category.CORE: N_("Getting started"),
    Category.TRADING: N_("Trading"),
    Category.BUSINESS: N_("Account and plans"),
}

MENU_PREFIX = "menu"


def command_text(message: Message) -> str | None:
    """Where a message's command is: its text, else its caption (a photo or document sent with '/balance')."""
    return message.text or message.caption


@dataclass(frozen=True, slots=True)
class Money:
    """Which uses of a command move money or link an account: those wait for the risk disclosure.

    ``typed``: the typed command (or its menu button) does, whatever follows it; when False, only with a first
    argument in ``args`` (case-insensitive). ``buttons``: its buttons that do, each a callback prefix (every
    press) or ``prefix:action`` (presses whose first field is that action). Everything else only reads.
    """

    typed: bool = True
    args: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()

    def typed_moves(self, text: str | None) -> bool:
        """Whether the command typed as ``text`` ('/name args…'; None: the bare command) moves money."""
        if self.typed:
            return True
        words = (text or "").split()
        return len(words) > 1 and words[1].lower() in self.args

    def press_moves(self, data: str) -> bool:
        """Whether a press of the button with callback ``data`` ('prefix:field:…') moves money."""
        prefix, _, rest = data.partition(":")
        action = rest.split(":", 1)[0]
        return prefix in self.buttons or f"{prefix}:{action}" in self.buttons


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    router: Callable[[], Router]
    description: str  # msgid
    category: Category
    min_tier: str | None = None
    feature: Feature | None = None
    button: str | None = None  # msgid of its /start menu button; None: not on the menu
    callbacks: tuple[str, ...] = ()  # callback-data prefixes of this command's buttons (gated with it)
    role: Role | None = None  # staff-only (SUPPORT: support and admins; ADMIN: admins); hidden from everyone else
    private: bool = False  # account and money: served in a private chat only, never posted into a group
    money: Money | None = None  # what of it moves money or links an account (behind the disclosure); None: reads

    def moves_money(self, *, text: str | None = None, data: str | None = None) -> bool:
        """Whether this use of the command (typed ``text``, a pressed button's ``data``, or neither: the bare
        command, as a menu button or a dialog action) moves money or links an account."""
        if self.money is None:
            return False
        if data is not None and data.partition(":")[0] != MENU_PREFIX:
            return self.money.press_moves(data)
        return self.money.typed_moves(text)

    @property
    def staff(self) -> bool:
        return self.role is not None

    def permits(self, role: Role) -> bool:
        """Whether a user with ``role`` may see and use this command."""
        if self.role is None:
            return True
        return role == Role.ADMIN or (self.role == Role.SUPPORT and role == Role.SUPPORT)

    @property
    def gated(self) -> bool:
        return self.min_tier is not None or self.feature is not None


class Registry:
    def __init__(self, commands: Iterable[Command]) -> None:
        self._commands = tuple(commands)
        self._by_name: dict[str, Command] = {}
        self._by_prefix: dict[str, Command] = {}
        for command in self._commands:
            if command.name in self._by_name:
                raise ValueError(f"/{command.name} declared twice")
            self._by_name[command.name] = command
            for prefix in command.callbacks:
                if prefix in self._by_prefix or prefix == MENU_PREFIX:
                    raise ValueError(f"callback prefix {prefix!r} claimed twice")
                self._by_prefix[prefix] = command

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands)

    def get(self, name: str) -> Command | None:
        return self._by_name.get(name)

    def for_text(self, text: str | None) -> Command | None:
        """The command a text invokes: '/name', '/name@bot args' (case-insensitive).

        Parsed as aiogram's ``Command`` filter parses it (first whitespace-separated word, mention after
        '@'), so whatever a router's filter would take, the gates see too. Matching more (any mention,
        any case) only gates more.
        """
        words = (text or "").split(maxsplit=1)
        if not words or not words[0].startswith("/"):
            return None
        return self._by_name.get(words[0][1:].partition("@")[0].lower())

    def for_message(self, message: Message) -> Command | None:
        """The command a message invokes from its text or, as aiogram's ``Command`` filter reads it, its caption."""
        return self.for_text(command_text(message))

    def for_callback(self, data: str | None) -> Command | None:
        if not data:
            return None
        prefix, _, rest = data.partition(":")
        if prefix == MENU_PREFIX:
            return self._by_name.get(rest.split(":", 1)[0])
        return self._by_prefix.get(prefix)

    def routers(self) -> list[Router]:
        """One router per distinct factory, in declaration order."""
        seen: dict[Callable[[], Router], None] = {}
        for command in self._commands:
            seen.setdefault(command.router)
        return [factory() for factory in seen]

    def public(self) -> list[Command]:
        """Commands everyone sees: staff commands never reach the public menu, /help or setMyCommands."""
        return [c for c in self._commands if not c.staff]

    def for_role(self, role: Role) -> list[Command]:
        """Everything a staff member's own command menu lists (public and the staff commands of their role)."""
        return [c for c in self._commands if c.permits(role)]

    def menu(self) -> list[Command]:
        return [c for c in self._commands if c.button is not None and not c.staff]

    def by_category(self) -> dict[Category, list[Command]]:
        grouped: dict[Category, list[Command]] = {}
        for command in self.public():
            grouped.setdefault(command.category, []).append(command)
        return grouped

    @staticmethod
    def allowed(command: Command, tier: Tier, tiers: TierCatalog) -> bool:
        return tiers.allows(tier, min_tier=command.min_tier, feature=command.feature)

    @staticmethod
    def required_tier(command: Command, tiers: TierCatalog) -> Tier | None:
        return tiers.required_for(min_tier=command.min_tier, feature=command.feature)
