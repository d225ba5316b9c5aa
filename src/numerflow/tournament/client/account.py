"""Account: the models of the account and their ids."""

from __future__ import annotations

from numerflow.errors import NotFoundError
from numerflow.tournament.client.core import ClientCore


class AccountMixin(ClientCore):
    def models(self) -> dict[str, str]:
        """``{model name: model id}`` for the classic tournament (needs API keys)."""
        return dict(self.get_models())

    def model_id(self, name: str) -> str:
        """The id of the account's model ``name``; NotFoundError naming the known ones otherwise."""
        models = self.models()
        try:
            return models[name]
        except KeyError:
            known = ", ".join(sorted(models)) or "none"
            raise NotFoundError(
                f"the Numerai account has no model named {name!r} (known: {known}); "
                "check numerai_model in numerflow.toml"
            ) from None
