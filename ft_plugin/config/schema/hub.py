"""Hub publishing keys: `hub_model_id` (Axolotl) and our `hub:` block."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class HubOptions(Section):
    private: bool = Field(True, description="Create the repo private.")
    revision: str | None = Field(None, description="Branch to push to.")
    create_pr: bool = Field(False, description="Open a pull request instead of committing.")
    commit_message: str | None = Field(None, description="Commit message.")
    license: str = Field("apache-2.0", description="Licence in the model card.")
    language: list[str] = Field(
        default_factory=lambda: ["en"], description="Languages in the card."
    )


class HubSection(Section):
    hub_model_id: str | None = Field(
        None, description="Push the run to this Hub repo (OWNER/NAME) when training ends."
    )
    hub: HubOptions = Field(default_factory=HubOptions, description="Publishing options.")
