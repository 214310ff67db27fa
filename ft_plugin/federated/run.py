"""`ft-plugin federated RECIPE`: deal the data to clients, run the federation, and turn
its result into a normal run directory (adapter, metrics.json, plots, card).

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    loaded = load_recipe("medical-lora", {"federated.num_clients": 2, "federated.rounds": 2})
    federated_train(loaded, "runs/fed").metrics["federated"]["rounds_completed"]  # 2
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir

from .layout import FederatedDir
from .partition import column_split, dirichlet_split, iid_split


@dataclass
class FederatedResult:
    run_dir: Path
    metrics: dict[str, Any]


def _dataset_dict(spec: Any, **changes: Any) -> dict[str, Any]:
    return {**spec.model_dump(mode="json", exclude_none=True), **changes}


def _label_column(spec: Any, rows: list[dict[str, Any]]) -> str:
    from ft_plugin.data.formats import CONVERTERS, template_mapping
    from ft_plugin.data.templates import load_template

    if spec.type in CONVERTERS or not load_template(spec.type).labels:
        raise UserError(f"federated.partition: dirichlet splits by label, and type {spec.type} "
                        "has no labels; use iid or column:NAME")  # fmt: skip
    template = load_template(spec.type)
    field = template.labels.field
    column = template_mapping(template, spec).get(field)
    names = [column] if column else [field, *template.fields[field]]
    found = next((n for n in names if n in rows[0]), None)
    if found is None:
        raise UserError(f"federated.partition: no label column ({', '.join(names)}) in {spec.path}")
    return found


def client_datasets(recipe: Any, folder: FederatedDir) -> list[dict[str, Any]]:
    """One dataset entry per client: its own `datasets:` entry (``files``), or its share
    of the single dataset, written to ``federated/clients/client-K.jsonl``."""
    from ft_plugin.data.reading import read_rows

    settings = recipe.federated
    if settings.partition == "files":
        if len(recipe.datasets) != settings.num_clients:
            raise UserError(f"federated.partition: files needs one datasets: entry per client "
                            f"({settings.num_clients}); the recipe has {len(recipe.datasets)}")  # fmt: skip
        return [_dataset_dict(spec) for spec in recipe.datasets]
    if len(recipe.datasets) != 1:
        raise UserError("federated.partition: iid, dirichlet and column:NAME split one dataset; "
                        "give one datasets: entry, or partition: files for one per client")  # fmt: skip
    spec = recipe.datasets[0]
    rows = read_rows(spec.path, split=spec.split, name=spec.name, data_files=spec.data_files,
                     revision=spec.revision, encoding=spec.encoding)  # fmt: skip
    parts = _split(rows, spec, settings, recipe.seed)
    folder.clients.mkdir(parents=True, exist_ok=True)
    out = []
    for k, indices in enumerate(parts):
        path = folder.client_file(k)
        path.write_text("".join(json.dumps(rows[i], ensure_ascii=False, default=str) + "\n" for i in indices),
                        encoding="utf-8")  # fmt: skip
        out.append(_dataset_dict(spec, path=str(path), encoding="utf-8", split="train"))
    return out


def _split(rows: list[dict[str, Any]], spec: Any, settings: Any, seed: int) -> list[list[int]]:
    if settings.partition == "iid":
        return iid_split(len(rows), settings.num_clients, seed)
    if settings.partition == "dirichlet":
        column = _label_column(spec, rows)
        return dirichlet_split(
            [str(r.get(column)) for r in rows], settings.num_clients, settings.alpha, seed
        )
    column = settings.partition.split(":", 1)[1]
    if column not in rows[0]:
        raise UserError(f"federated.partition: column {column!r} not in {spec.path} "
                        f"(columns: {', '.join(rows[0])})")  # fmt: skip
    return column_split([str(r.get(column)) for r in rows], settings.num_clients)


def _check(loaded: Any) -> Any:
    from ft_plugin import registry

    recipe = loaded.recipe
    if recipe.federated is None:
        raise UserError(
            f"{loaded.source}: no federated: section (federated.num_clients, rounds, …)"
        )
    if not registry.load_method(recipe.adapter).uses_peft:
        raise UserError(f"federated: adapter {recipe.adapter} trains full weights; federated "
                        "training averages adapters (lora, dora, ia3, …)")  # fmt: skip
    if recipe.federated.engine == "simulation":
        raise UserError("federated.engine: simulation needs Flower's Ray backend "
                        "(pip install 'ft-plugin[federated-simulation]'); engine: deployment runs here")  # fmt: skip
    return recipe


def _threads_per_client(clients: int) -> int:
    """This machine's cores shared among the clients it hosts (oversubscribed threads
    made each step several times slower, measured with 3 clients on 2 cores)."""
    import os

    return max(1, (os.cpu_count() or 1) // clients)


def site_node_configs(
    loaded: Any, run: RunDir, folder: FederatedDir, datasets: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each simulated site's own ``--node-config``: the run's recipe as the site's recipe,
    the site's share of the data in place of ``datasets``, its work folder, its threads."""
    threads = loaded.recipe.torch_threads or _threads_per_client(max(1, len(datasets)))
    return [{"partition-id": k, "recipe": str(run.recipe_path.resolve()),
             "dataset": json.dumps(dataset, ensure_ascii=False),
             "work": str(folder.node(k).resolve() / "work"), "torch-threads": threads}
            for k, dataset in enumerate(datasets)]  # fmt: skip


def federated_train(
    loaded: Any, output_dir: str | None = None, resume: bool = False
) -> FederatedResult:
    """Train ``loaded`` across its clients on Flower's Deployment Engine into a run dir:
    simulated sites on this machine, or (``federated.superlink`` with TLS files) the
    sites that connect to this SuperLink with their own recipes and data."""
    from .deployment import local_federation
    from .transport import transport_for

    recipe = _check(loaded)
    transport = transport_for(recipe.federated)  # refuses non-loopback without TLS and keys
    run = RunDir.for_recipe(loaded, output_dir)
    run.check_reuse(loaded.to_yaml(), resume="auto" if resume else False)
    folder = FederatedDir(run.path)
    if not resume:
        shutil.rmtree(folder.path, ignore_errors=True)
    datasets = [] if transport.secure else client_datasets(recipe, folder)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_recipe(loaded)
    started = time.perf_counter()
    run_config = {"recipe": str(run.recipe_path.resolve()), "run-dir": str(run.path.resolve())}
    with local_federation(folder, transport) as federation:
        for k, node_config in enumerate(site_node_configs(loaded, run, folder, datasets)):
            federation.start_supernode(k, node_config)
        if transport.secure:
            print(f"ft-plugin federated: waiting for {recipe.federated.num_clients} sites at "
                  f"{transport.host}:{federation.port} (TLS, SuperNode authentication; "
                  f"{len(transport.public_keys)} keys registered)", file=sys.stderr, flush=True)  # fmt: skip
        federation.run(
            run_config,
            timeout=recipe.federated.round_timeout * recipe.federated.rounds + 600,
            rounds=recipe.federated.rounds,
        )
    from .finish import finish_run

    metrics = finish_run(loaded, folder, wall_seconds=time.perf_counter() - started)
    return FederatedResult(run.path, metrics)
