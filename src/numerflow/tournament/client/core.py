"""The part every concern shares: credentials, the transport, and numerapi's ``raw_query`` replaced."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numerapi

from numerflow.errors import ApiAuthError
from numerflow.tournament.client.transport import Transport

if TYPE_CHECKING:
    from numerflow.config import Settings

log = logging.getLogger(__name__)

TOURNAMENT_CLASSIC = 8
TOURNAMENT_SIGNALS = 11
TOURNAMENT_CRYPTO = 12
#: Numerai's tournament ids by the names the config uses (``[signals_models.X] tournament = "signals"``)
TOURNAMENTS: dict[str, int] = {
    "classic": TOURNAMENT_CLASSIC,
    "signals": TOURNAMENT_SIGNALS,
    "crypto": TOURNAMENT_CRYPTO,
}
TOURNAMENT_NAMES: dict[int, str] = {v: k for k, v in TOURNAMENTS.items()}


def tournament_id(value: int | str) -> int:
    """8, 11 or 12 from an id or a name (``"signals"``); ConfigError naming the known ones otherwise."""
    from numerflow.errors import ConfigError

    if isinstance(value, str) and not value.strip().isdigit():
        found = TOURNAMENTS.get(value.strip().lower())
    else:
        found = int(value) if int(value) in TOURNAMENT_NAMES else None
    if found is None:
        known = ", ".join(f"{n} ({i})" for n, i in TOURNAMENTS.items())
        raise ConfigError(f"unknown tournament {value!r}; use one of {known}")
    return found


class ClientCore(numerapi.NumerAPI):
    """numerapi's API with our transport under it, for one tournament (Classic unless told otherwise).

    Every numerapi method (``get_models``, ``submission_scores``, ``stake_change``...) goes through
    :meth:`raw_query`, so all of them get timeouts, retries and real error messages. The endpoint is
    this object's ``api_url``, not numerapi's module-level global, so several clients can coexist.
    Its ``tournament_id`` (8 Classic; 11 Signals and 12 Crypto through :meth:`for_tournament`, which
    shares this transport) is sent by every call that names a tournament: rounds, models, datasets,
    uploads, scores.
    """

    def __init__(
        self,
        api_url: str,
        public_id: str | None = None,
        secret_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 1.0,
        upload_timeout_s: float = 600.0,
        confirm_wait_s: float | None = None,
    ) -> None:
        super().__init__(public_id, secret_key, verbosity="WARNING", show_progress_bars=False)
        self.api_url = api_url
        self.upload_timeout_s = upload_timeout_s
        self._confirm_wait_s = confirm_wait_s
        self.transport = Transport(api_url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)

    @classmethod
    def from_settings(cls, settings: Settings, tournament: int | str = TOURNAMENT_CLASSIC) -> Any:
        """A client for ``[numerai]`` (url, timeout, retries, keys) and ``[tournament]`` upload timeout,
        for ``tournament`` (Classic by default; see :meth:`for_tournament`)."""
        keys = settings.numerai_keys()
        client = cls(
            settings.numerai.api_url,
            *(keys or (None, None)),
            timeout_s=settings.numerai.timeout_s,
            retries=settings.numerai.retries,
            backoff_s=settings.numerai.backoff_s,
            upload_timeout_s=settings.tournament.upload_timeout_s,
            confirm_wait_s=settings.tournament.confirm_wait_s,
        )
        return client.for_tournament(tournament)

    def for_tournament(self, tournament: int | str) -> Any:
        """A client of the right class for ``tournament`` (:func:`client_class`) with this one's keys,
        settings and :class:`Transport` (one session, one retry policy); ``self`` when it already is."""
        number = tournament_id(tournament)
        if number == self.tournament_id:
            return self
        other = object.__new__(client_class(type(self), number))
        other.__dict__.update(self.__dict__)
        other.tournament_id = number
        return other

    @property
    def has_keys(self) -> bool:
        return self.token is not None

    def raw_query(  # type: ignore[override]
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        authorization: bool = False,
        *,
        retries: int | None = None,
        delay: int | None = None,
        backoff: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """numerapi's entry point, done by :class:`Transport`. ``retries/delay/backoff`` are accepted and
        ignored (numerapi's own knobs); ours come from the constructor."""
        auth_header = None
        if authorization:
            if not self.token:
                raise ApiAuthError(
                    "this call needs Numerai API keys; set NUMERAI_PUBLIC_ID and NUMERAI_SECRET_KEY "
                    "(or numerai.secrets_file in numerflow.toml)"
                )
            public_id, secret_key = self.token
            auth_header = f"Token {public_id}${secret_key}"
        return self.transport.post_graphql(query, variables, auth_header=auth_header, timeout_s=timeout_s)

    def close(self) -> None:
        self.transport.session.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_class(base: type, tournament: int) -> type:
    """``base`` (a :class:`ClientCore` subclass) for ``tournament``: for Signals and Crypto with numerapi's
    ``SignalsAPI`` / ``CryptoAPI`` calls of their own (leaderboard, ``v2SignalsProfile`` daily
    performances, ticker universe) in place of Classic's; uploads stay the checked upload of
    ``submissions.py``, which picks each tournament's upload calls. Made once per (base, tournament)."""
    if tournament == TOURNAMENT_CLASSIC:
        return base
    key = (base, tournament)
    made = _CLASSES.get(key)
    if made is None:
        api = numerapi.SignalsAPI if tournament == TOURNAMENT_SIGNALS else numerapi.CryptoAPI
        own = {
            name: getattr(api, name)
            for name in ("get_leaderboard", "daily_model_performances", "ticker_universe")
            if name in vars(api)
        }
        if "daily_model_performances" not in own:  # Crypto has no daily profile: not Classic's either
            own["daily_model_performances"] = _no_daily
        made = _CLASSES[key] = type(f"{api.__name__}{base.__name__}", (base,), own)
    return made


def _no_daily(self: Any, username: str) -> list[dict[str, Any]]:
    from numerflow.errors import ApiError

    raise ApiError(f"tournament {self.tournament_id} has no daily model performances; use round_performances")


_CLASSES: dict[tuple[type, int], type] = {}
