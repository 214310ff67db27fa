"""The Space's training jobs (no Gradio): real `ft-plugin train` children on a tiny model.

Every child is stopped by the test that starts it (the fixture closes the service).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from space_helpers import FIELDS, QUICK, write_gb18030_csv
from tiny import save_tiny_model

from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir
from ft_plugin.space.access import OWNER, Access
from ft_plugin.space.settings import Limits
from ft_plugin.space.training.recipe import TrainRequest
from ft_plugin.space.training.service import TrainingService

# Trains tiny runs (in child processes) and serves the Space: minutes in all.
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("space-train") / "tiny")


@pytest.fixture
def service(tmp_path: Path, tiny_model: Path):  # noqa: ANN201
    served: list[tuple[Path, str]] = []
    limits = Limits(max_train_steps=400, stop_grace_s=60)
    training = TrainingService(tmp_path / "space", limits, Access("local"),
                               base_models=lambda: [str(tiny_model)],
                               on_finished=lambda run, label: served.append((run, label)))  # fmt: skip
    training.served = served
    yield training
    training.close(timeout=30)


def wait_for(service: TrainingService, job: str, done, timeout: float = 240):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.status(OWNER, job)
        if done(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"timed out: {service.status(OWNER, job)}")


def finished(status: dict) -> bool:
    return status["state"] in ("done", "stopped", "failed")


def start(service: TrainingService, csv: Path, model: Path, **overrides: object) -> str:
    request = TrainRequest(data=str(csv), template="medical", fields=FIELDS, method="lora",
                           base_model=str(model), overrides={**QUICK, **overrides})  # fmt: skip
    return service.start(OWNER, request)


def test_a_run_trains_reports_live_numbers_and_is_served(service, tiny_model, tmp_path) -> None:  # noqa: ANN001
    csv = write_gb18030_csv(tmp_path / "内科.csv")
    upload = service.upload(OWNER, str(csv), "medical")
    assert (upload.encoding, upload.rows, upload.shown) == ("gb18030", 40, "内科.csv")
    assert upload.mapping == FIELDS  # not names the template knows: the closest free columns
    job = start(service, csv, tiny_model, max_steps=6)
    status = wait_for(service, job, finished)
    assert status["state"] == "done", status
    run = RunDir(status["run_dir"])
    assert run.has_adapter() and run.status()["state"] == "done"
    assert [s for s, _ in status["loss"]] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in status["eval_loss"]] == [3, 6]
    assert status["metrics"]["steps"] == 6 and status["tokens_per_second"] > 0
    recipe = (Path(status["run_dir"]).parent / status["recipe"]).read_text(encoding="utf-8")
    assert "field_instruction: 问" in recipe and "encoding: gb18030" in recipe
    assert service.served == [(run.path, f"space-medical-lora ({job})")]
    assert [h["run_id"] for h in service.history(OWNER)] == [job]


def test_stop_keeps_a_checkpoint_and_resume_finishes_the_run(service, tiny_model, tmp_path) -> None:  # noqa: ANN001
    csv = write_gb18030_csv(tmp_path / "rows.csv")
    job = start(service, csv, tiny_model, max_steps=300, eval_steps=1000)
    wait_for(service, job, lambda s: s["step"] >= 3 or finished(s))
    stopped = service.stop(OWNER, job)
    assert stopped["state"] in ("stopping", "stopped")  # never "running" after Stop
    status = wait_for(service, job, finished)
    assert status["state"] == "stopped", status
    run = RunDir(status["run_dir"])
    assert run.status()["state"] == "stopped" and run.latest_checkpoint() is not None
    assert run.metrics()["stopped"]["signal"] == "SIGTERM"
    at = run.metrics()["steps"]
    service.resume(OWNER, job)
    status = wait_for(service, job, lambda s: finished(s) and s["step"] > at, timeout=400)
    assert status["state"] == "done" and status["metrics"]["steps"] == 300, status
    assert "--resume" in (Path(status["run_dir"]).parent / "train.log").read_text()


def test_a_second_start_waits_in_the_queue(service, tiny_model, tmp_path) -> None:  # noqa: ANN001
    csv = write_gb18030_csv(tmp_path / "rows.csv")
    first = start(service, csv, tiny_model, max_steps=4)
    second = start(service, csv, tiny_model, max_steps=2)
    assert service.status(OWNER, second)["state"] == "queued"
    assert service.status(OWNER, second)["queue_position"] == 1
    assert wait_for(service, first, finished)["state"] == "done"
    assert wait_for(service, second, finished)["state"] == "done"


def test_a_crashed_child_shows_its_error_and_marks_the_run_failed(
    service, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    csv = write_gb18030_csv(tmp_path / "rows.csv")
    job = start(service, csv, tiny_model, max_steps=400, eval_steps=1000)
    running = wait_for(service, job, lambda s: s["step"] >= 2 or finished(s))
    pid = json.loads((Path(running["run_dir"]).parent / "job.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    status = wait_for(service, job, finished)
    assert status["state"] == "failed" and status["error"]
    assert RunDir(status["run_dir"]).status()["state"] == "failed"

    service.base_models = lambda: [str(tiny_model), str(tmp_path / "no-such-model")]
    bad_model = start(service, csv, tmp_path / "no-such-model", max_steps=2)
    status = wait_for(service, bad_model, finished)
    assert status["state"] == "failed" and status["error"].startswith("error:")
    assert "no-such-model" in status["error"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": {"instruction": "科室"}}, "choose the column that holds 'output'"),
        (
            {"fields": {"output": "答", "instruction": "nope"}},
            "column 'nope' (for instruction) not found",
        ),
        ({"overrides": {"max_steps": 5000}}, "over this Space's cap of 400"),
        ({"method": "magic"}, "method: 'magic' is not one of"),
        ({"template": ""}, "template: choose a domain template first"),
    ],
)
def test_bad_requests_are_one_message_and_leave_nothing(
    service, tiny_model, tmp_path, change, message
) -> None:  # noqa: ANN001
    csv = write_gb18030_csv(tmp_path / "rows.csv")
    request = {"data": str(csv), "template": "medical", "fields": FIELDS, "method": "lora",
               "base_model": str(tiny_model), "overrides": {"max_steps": 2}} | change  # fmt: skip
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        service.start(OWNER, TrainRequest(**request))
    assert list(service.jobs.root.iterdir()) == []


def test_unreadable_and_oversized_files_are_refused(service, tmp_path) -> None:  # noqa: ANN001
    binary = tmp_path / "rows.csv"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UserError):
        service.upload(OWNER, str(binary), "medical")
    wrong = tmp_path / "rows.docx"
    wrong.write_text("x")
    with pytest.raises(UserError, match="expected one of"):
        service.upload(OWNER, str(wrong), "medical")
    small = TrainingService(tmp_path / "small", Limits(max_train_rows=10), Access("local"))
    try:
        with pytest.raises(UserError, match="40 rows is over this Space's cap of 10"):
            small.upload(OWNER, str(write_gb18030_csv(tmp_path / "many.csv")), "medical")
    finally:
        small.close()


def test_the_downloaded_recipe_reproduces_the_space_run_from_the_command_line(
    service,
    tiny_model,
    tmp_path,  # noqa: ANN001
) -> None:
    import torch
    from helpers import cli
    from safetensors.torch import load_file

    csv = write_gb18030_csv(tmp_path / "内科.csv")
    settings = {**QUICK, "max_steps": 4}
    job = start(service, csv, tiny_model, max_steps=4)
    status = wait_for(service, job, finished)
    assert status["state"] == "done", status
    upload = service.upload(OWNER, str(csv), "medical")
    request = TrainRequest(data=upload.source, template="medical", fields=FIELDS, method="lora",
                           base_model=str(tiny_model), overrides=settings, encoding=upload.encoding)  # fmt: skip
    downloaded = tmp_path / "recipe.yaml"  # what the page offers; the user's file sits beside it
    downloaded.write_text(service.recipe_yaml(OWNER, upload, request), encoding="utf-8")
    assert "path: 内科.csv" in downloaded.read_text(encoding="utf-8")
    result = cli("train", str(downloaded), "--output-dir", str(tmp_path / "cli-run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    space = load_file(Path(status["run_dir"]) / "adapter_model.safetensors")
    terminal = load_file(tmp_path / "cli-run" / "adapter_model.safetensors")
    assert space.keys() == terminal.keys()
    for key in space:
        torch.testing.assert_close(space[key], terminal[key], atol=1e-6, rtol=1e-5)


def ratings_of(label: str) -> list[dict]:
    """Blind ratings as the Rate tab writes them: six pairs where the rater preferred the
    tuned answer (shown as A or as B), and one tie."""
    from ft_plugin.space.ratings import new_record

    def one(i: int, tuned_slot: str, preference: str) -> dict:
        answers = {f"answer_{tuned_slot}": f"请及时就医，检查{i}。",
                   f"answer_{'b' if tuned_slot == 'a' else 'a'}": f"不用管{i}。"}  # fmt: skip
        return new_record(adapter=label, prompt=f"头痛{i}天怎么办？", answers=answers, scores={},
                          preference=preference, tuned=tuned_slot, source="ui")  # fmt: skip

    return [one(i, "ab"[i % 2], "ab"[i % 2]) for i in range(6)] + [one(9, "a", "tie")]


def test_train_on_ratings_tunes_the_served_adapter_with_dpo(service, tmp_path) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from space_helpers import build_tiny_space_run

    from ft_plugin.space.access import VISITOR, Forbidden

    run = build_tiny_space_run(tmp_path / "served")
    served = SimpleNamespace(
        label="medical-lora", run_dir=run, recipe=RunDir(run).load_recipe().recipe
    )
    with pytest.raises(Forbidden):
        service.start_on_ratings(VISITOR, served, ratings_of("medical-lora"))
    with pytest.raises(UserError, match="0 usable preference pair.*rate at least 2"):
        service.start_on_ratings(OWNER, served, ratings_of("another-adapter"))
    assert not any(service.jobs.root.iterdir())  # refusals leave nothing behind
    job = service.start_on_ratings(OWNER, served, ratings_of("medical-lora"), {"max_steps": 2})
    status = wait_for(service, job, finished)
    assert status["state"] == "done", status
    assert status["metrics"]["train_rows"] == 6 and "rewards" in status["metrics"]
    recipe = RunDir(status["run_dir"]).load_recipe().recipe
    assert recipe.rl == "dpo" and recipe.lora_model_dir == str(run)
    assert recipe.datasets[0].type == "chat_template.default"
    assert RunDir(status["run_dir"]).has_adapter()


def test_a_finished_run_downloads_as_a_checked_gguf(tmp_path: Path) -> None:
    from helpers import require
    from tiny import save_tiny_model_with_embedded_tokenizer

    from ft_plugin.space.access import VISITOR, Forbidden

    require("llama_cpp", "`make llama-cpp` builds llama-cpp-python")
    base = save_tiny_model_with_embedded_tokenizer(tmp_path / "smol")
    service = TrainingService(tmp_path / "space", Limits(max_train_steps=400), Access("local"),
                              base_models=lambda: [str(base)])  # fmt: skip
    try:
        job = start(service, write_gb18030_csv(tmp_path / "内科.csv"), base, max_steps=2)
        assert wait_for(service, job, finished)["state"] == "done"
        with pytest.raises(Forbidden, match="to export a run"):
            service.export_gguf(VISITOR, job, "q8_0")
        path, note = service.export_gguf(OWNER, job, "q8_0")
        assert path.name == "run-q8_0.gguf" and path.stat().st_size > 1_000_000
        assert note.startswith("Checked against the run: ") and "perplexity" in note
        exported = service.jobs.run_dir(job) / "export" / "run-q8_0.gguf"
        assert path.samefile(exported) or path.read_bytes() == exported.read_bytes()
        assert not path.is_relative_to(tmp_path / "space"), "Gradio would serve the data folder"
        written = exported.stat().st_mtime_ns
        again, _ = service.export_gguf(OWNER, job, "q8_0")  # reused, not exported again
        assert again != path and exported.stat().st_mtime_ns == written
    finally:
        service.close(timeout=30)
