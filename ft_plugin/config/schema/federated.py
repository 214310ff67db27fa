"""`federated:` — one adapter trained across sites that keep their rows (on Flower)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

PARTITIONS = ("iid", "dirichlet", "column:NAME", "files")


class PrivacySection(Section):
    """Differential privacy with fixed clipping (Flower's DP wrappers)."""

    noise_multiplier: float = Field(
        ge=0, description="Gaussian noise σ as a multiple of the clipping norm."
    )
    clipping_norm: float = Field(gt=0, description="L2 norm each client's update is clipped to.")
    side: Literal["client", "server"] = Field(
        "server", description="Where updates are clipped: on each client, or on the server."
    )


class FederatedSettings(Section):
    num_clients: int = Field(2, ge=1, description="Sites (SuperNodes) taking part.")
    partition: str = Field(
        "iid",
        description="How rows are dealt to clients: `iid`, `dirichlet` (over labels, see alpha), "
        "`column:NAME` (one client per value of a column, e.g. column:department) or `files` "
        "(one `datasets:` entry per client: real silos).",
    )
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration (smaller: more skewed).")
    rounds: int = Field(3, ge=1, description="Federated rounds.")
    round_timeout: float = Field(
        1800,
        gt=0,
        description="Seconds a round waits for client replies (a lost client times out).",
    )
    fraction_train: float = Field(
        1.0, gt=0, le=1, description="Share of clients sampled per round."
    )
    local_steps: int = Field(
        10, ge=1, description="Optimizer steps each sampled client runs per round."
    )
    min_clients: int = Field(
        1, ge=1, description="A round needs at least this many client replies to count."
    )
    strategy: Literal["fedavg", "ffa-lora"] = Field(
        "fedavg",
        description="`fedavg`: example-weighted average of the whole adapter; `ffa-lora`: LoRA A "
        "frozen at its shared random start, only B trained and averaged (exact aggregation).",
    )
    engine: Literal["deployment", "simulation"] = Field(
        "deployment",
        description="`deployment`: flower-superlink and one flower-supernode per client as "
        "processes; `simulation`: Flower's Ray simulation (extra `federated-simulation`).",
    )
    lr_final: float | None = Field(
        None, gt=0, description="Cosine-anneal the learning rate across rounds down to this."
    )
    dp: PrivacySection | None = Field(None, description="Differential privacy settings.")

    @field_validator("partition")
    @classmethod
    def _known_partition(cls, value: str) -> str:
        if value in ("iid", "dirichlet", "files") or re.fullmatch(r"column:\S+", value):
            return value
        raise ValueError(f"{value!r}: expected one of {', '.join(PARTITIONS)}")

    @model_validator(mode="after")
    def _consistent(self) -> FederatedSettings:
        if self.min_clients > self.num_clients:
            raise ValueError(
                f"min_clients {self.min_clients} is more than num_clients {self.num_clients}"
            )
        if self.dp is not None and self.strategy == "ffa-lora":
            raise ValueError(
                "dp: Flower's clipping compares the whole adapter sent and returned; "
                "use strategy: fedavg with dp (ffa-lora returns B alone)"
            )
        return self


class FederatedSection(Section):
    federated: FederatedSettings | None = Field(
        None, description="Federated training across clients (`ft-plugin federated RECIPE`)."
    )
