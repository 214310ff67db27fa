"""The Space's Train endpoints through gradio_client, on 127.0.0.1, with a tiny model, as
its owner (signed in with ``--auth``): /train_start, /train_status, /train_stop,
/train_resume, /train_serve; the queue; a child's crash; bad inputs as one message; a
finished run served in /compare without a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from space_helpers import QUICK, free_port, write_gb18030_csv
from tiny import save_tiny_model

# Trains tiny runs (in child processes) and serves the Space: minutes in all.
pytestmark = [pytest.mark.slow]
FIELDS = json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False)
OWNER_LOGIN = "owner:owner-password"


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from gradio_client import Client

    from ft_plugin.space import Limits, SpaceState, build_blocks, launch_kwargs
    from ft_plugin.space.access import access_for

    tmp = tmp_path_factory.mktemp("space-train-api")
    model = save_tiny_model(tmp / "tiny")
    limits = Limits(max_train_steps=400, stop_grace_s=60, max_new_tokens=8, default_new_tokens=4)
    access = access_for(host="127.0.0.1", share=False, environ={}, auth=[OWNER_LOGIN])
    state = SpaceState.load([], data_dir=tmp / "space", limits=limits, access=access,
                            base_models=[str(model), "/no/such/model"])  # fmt: skip
    demo = build_blocks(state)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(),
                            prevent_thread_lock=True, **launch_kwargs(limits, access))  # fmt: skip
    client = Client(url, verbose=False, auth=tuple(OWNER_LOGIN.split(":")))
    yield {
        "client": client,
        "state": state,
        "model": model,
        "csv": write_gb18030_csv(tmp / "内科.csv"),
    }
    state.close()
    demo.close()


def start(space: dict, **overrides: object) -> str:
    from gradio_client import handle_file

    return space["client"].predict(
        handle_file(str(space["csv"])), "medical", FIELDS, "lora", str(space["model"]),
        json.dumps({**QUICK, **overrides}), api_name="/train_start",
    )  # fmt: skip


def wait(space: dict, run_id: str, done, timeout: float = 300) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = space["client"].predict(run_id, api_name="/train_status")
        if done(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {run_id}")


def ended(status: dict) -> bool:
    return status["state"] in ("done", "stopped", "failed")


def test_two_starts_queue_and_the_finished_run_answers_in_compare(space: dict) -> None:
    first, second = start(space, max_steps=4), start(space, max_steps=2)
    assert isinstance(first, str) and first != second
    waiting = space["client"].predict(second, api_name="/train_status")
    assert waiting["state"] == "queued" and waiting["queue_position"] == 1
    done = wait(space, first, ended)
    assert done["state"] == "done" and [s for s, _ in done["loss"]] == [1, 2, 3, 4]
    assert (
        done["max_steps"] == 4 and done["tokens_per_second"] > 0 and Path(done["run_dir"]).is_dir()
    )
    assert wait(space, second, ended)["state"] == "done"
    assert space["state"].adapter_labels == []  # serving a run is the owner's choice
    for run_id in (first, second):
        label = space["client"].predict(run_id, False, api_name="/train_serve")
        assert label == f"space-medical-lora ({run_id})"
    base, tuned = space["client"].predict("头痛怎么办？", 4, api_name="/compare")
    assert isinstance(base, str) and isinstance(tuned, str)
    labels = space["state"].adapter_labels
    assert labels[0].startswith("space-medical-lora (") and len(labels) == 2


def test_stop_then_resume_through_the_api(space: dict) -> None:
    run_id = start(space, max_steps=300, eval_steps=1000)
    wait(space, run_id, lambda s: s["step"] >= 3 or ended(s))
    space["client"].predict(run_id, api_name="/train_stop")
    stopped = wait(space, run_id, ended)
    assert stopped["state"] == "stopped", stopped
    resumed = space["client"].predict(run_id, api_name="/train_resume")
    assert resumed["state"] in ("queued", "running")
    final = wait(space, run_id, lambda s: ended(s) and s["step"] == 300, timeout=400)
    assert final["state"] == "done"


def test_a_crash_is_reported_with_its_error_line(space: dict) -> None:
    from gradio_client import handle_file

    run_id = space["client"].predict(
        handle_file(str(space["csv"])), "medical", FIELDS, "lora", "/no/such/model",
        json.dumps({"max_steps": 2}), api_name="/train_start",
    )  # fmt: skip
    status = wait(space, run_id, ended)
    assert status["state"] == "failed" and "/no/such/model" in status["error"]


@pytest.mark.parametrize(
    ("fields", "overrides", "message"),
    [
        ('{"instruction": "科室"}', "{}", "choose the column that holds 'output'"),
        ("not json", "{}", "fields: expected a JSON object"),
        (FIELDS, '{"max_steps": 100000}', "over this Space's cap of 400"),
        (FIELDS, "[1, 2]", "overrides: expected a JSON object"),
    ],
)
def test_bad_inputs_are_one_message(space: dict, fields: str, overrides: str, message: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        space["client"].predict(
            handle_file(str(space["csv"])), "medical", fields, "lora", str(space["model"]), overrides,
            api_name="/train_start",
        )  # fmt: skip
    with pytest.raises(AppError, match="not a training run id"):
        space["client"].predict("../../etc", api_name="/train_status")
