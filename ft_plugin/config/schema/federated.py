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


class SuperLinkSection(Section):
    """Where the SuperLink listens, and what secures it when sites are other machines."""

    address: str = Field(
        "127.0.0.1",
        description="HOST or HOST:PORT the SuperLink listens on. Loopback (the default, on a "
        "free port): the sites are SuperNodes this command starts on this machine. Any other "
        "address: real sites connect from their own machines, over TLS (the three ssl_* "
        "files) with SuperNode authentication (supernode_public_keys).",
    )
    ssl_certfile: str | None = Field(
        None, description="The SuperLink's TLS certificate (PEM); its SANs must name the address."
    )
    ssl_keyfile: str | None = Field(None, description="The SuperLink's TLS private key (PEM).")
    ssl_ca_certfile: str | None = Field(
        None, description="The CA certificate (PEM) that signed ssl_certfile; sites verify with it."
    )
    supernode_public_keys: list[str] | None = Field(
        None,
        description="One public key file per site (an EC key such as "
        "`ssh-keygen -t ecdsa -b 384`'s .pub): only these SuperNodes may join.",
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
    max_examples_per_round: int | None = Field(
        None,
        ge=1,
        description="A site's reported num-examples (its weight in the average) is clamped to "
        "this. Default: the rows planned for one site's round, micro_batch_size × "
        "gradient_accumulation_steps × local_steps.",
    )
    max_update_norm: float | None = Field(
        None,
        gt=0,
        description="A site's update (its adapter minus the global one) longer than this in L2 "
        "norm is left out of the round. Default: 4 × the round's learning rate × local_steps × "
        "√(parameters sent), above what an Adam step can move.",
    )
    superlink: SuperLinkSection | None = Field(
        None,
        description="Where the SuperLink listens (default: 127.0.0.1 on a free port) and, for "
        "sites on other machines, its TLS files and the sites' public keys.",
    )

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
