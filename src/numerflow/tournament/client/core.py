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


class ClientCore(numerapi.NumerAPI):
    """numerapi's classic-tournament API with our transport under it.

    Every numerapi method (``get_models``, ``submission_scores``, ``stake_change``...) goes through
    :meth:`raw_query`, so all of them get timeouts, retries and real error messages. The endpoint is
    this object's ``api_url``, not numerapi's module-level global, so several clients can coexist.
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
    def from_settings(cls, settings: Settings) -> Any:
        """A client for ``[numerai]`` (url, timeout, retries, keys) and ``[tournament]`` upload timeout."""
        keys = settings.numerai_keys()
        return cls(
            settings.numerai.api_url,
            *(keys or (None, None)),
            timeout_s=settings.numerai.timeout_s,
            retries=settings.numerai.retries,
            backoff_s=settings.numerai.backoff_s,
            upload_timeout_s=settings.tournament.upload_timeout_s,
            confirm_wait_s=settings.tournament.confirm_wait_s,
        )

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
