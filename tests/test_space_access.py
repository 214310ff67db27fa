"""Who may do what in the Space, tried as an attacker would: an anonymous visitor through
gradio_client against a Space with Hugging Face sign-in (Gradio's local stand-in, on
127.0.0.1), and its signed-in owner. Visitors compare, rate and evaluate; everything
else is refused with one message and starts, writes and runs nothing. The owner cannot
run model code, read server files, train other models or write outside the Space.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from space_helpers import PROMPT, build_tiny_space_run, free_port, write_gb18030_csv
from tiny import save_tiny_model

from ft_plugin.errors import UserError
from ft_plugin.space.access import OWNER, VISITOR, Access, Forbidden, access_for
from ft_plugin.space.redaction import redact
from ft_plugin.utils.environment import child_environment

# Trains tiny runs (in child processes) and serves the Space: minutes in all.
pytestmark = [pytest.mark.slow]
FIELDS = json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False)
QUICK = {"logging_steps": 1, "sequence_len": 768, "val_set_size": 4, "micro_batch_size": 2}
SECRET = "hf_space_secret_0123456789"


def custom_code_model(folder: Path, marker: Path) -> Path:
    """A model folder whose config names custom code; importing that code writes ``marker``."""
    folder.mkdir(parents=True)
    auto = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel",
            "AutoTokenizer": ["evil.EvilTokenizer", None]}  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": auto}))
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('code ran')\n"
    )
    return folder


def sign_in(url: str) -> str:
    """The session cookie Gradio's local sign-in gives (as the machine's Hub user)."""
    import httpx

    with httpx.Client(base_url=url, follow_redirects=False) as http:
        callback = http.get("/login/huggingface").headers["location"]
        return http.get(callback).headers["set-cookie"].split(";")[0]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from gradio_client import Client
    from hub_server import run_hub_server

    from ft_plugin.space import Limits, SpaceState, build_blocks, launch_kwargs

    tmp = tmp_path_factory.mktemp("space-access")
    marker = tmp / "MARKER"
    evil = custom_code_model(tmp / "evil-model", marker)
    model = save_tiny_model(tmp / "tiny")
    run = build_tiny_space_run(tmp / "served")
    limits = Limits(max_train_steps=50, stop_grace_s=30, max_new_tokens=8, default_new_tokens=4,
                    concurrency=1, max_queue=4)  # fmt: skip
    access = Access("huggingface", frozenset({"test-user"}), mock_sign_in=True)
    state = SpaceState.load([str(run)], data_dir=tmp / "data", limits=limits, access=access,
                            base_models=[str(model), str(evil)])  # fmt: skip
    with run_hub_server() as hub, hub.patched_client():  # the stand-in reads whoami at start
        demo = build_blocks(state)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), quiet=True,
                                prevent_thread_lock=True, **launch_kwargs(limits, access))  # fmt: skip
    visitor = Client(url, verbose=False)
    owner = Client(url, verbose=False, headers={"Cookie": sign_in(url)})
    yield SimpleNamespace(url=url, state=state, visitor=visitor, owner=owner, model=model,
                          evil=evil, marker=marker, csv=write_gb18030_csv(tmp / "内科.csv"),
                          train=tmp / "data" / "train", tmp=tmp)  # fmt: skip
    state.close()
    demo.close()
    visitor.close()
    owner.close()


def start(client, space, base=None, overrides=None, template="medical"):  # noqa: ANN001, ANN201
    from gradio_client import handle_file

    return client.predict(
        handle_file(str(space.csv)), template, FIELDS, "lora", str(base or space.model),
        json.dumps({**QUICK, "max_steps": 2} if overrides is None else overrides),
        api_name="/train_start",
    )  # fmt: skip


def wait(client, run_id: str, timeout: float = 240) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(run_id, api_name="/train_status")
        if status["state"] in ("done", "stopped", "failed"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"{run_id} did not end")


def jobs(space) -> list[str]:  # noqa: ANN001
    return sorted(p.name for p in space.train.iterdir()) if space.train.is_dir() else []


# --------------------------------------------------------------------------- the rule itself


def test_how_the_space_knows_its_owner() -> None:
    local = access_for(host="127.0.0.1", share=False, environ={})
    assert local.mode == "local" and local.caller(None).owner
    for deployed in ({"host": "0.0.0.0", "share": False, "environ": {}},
                     {"host": "127.0.0.1", "share": True, "environ": {}},
                     {"host": "127.0.0.1", "share": False, "environ": {"SPACE_ID": "me/s"}}):  # fmt: skip
        closed = access_for(**deployed)
        assert closed.mode == "off" and not closed.caller("anyone").owner
        with pytest.raises(Forbidden, match="sign-in is off: turn on Hugging Face sign-in"):
            closed.require_owner(OWNER, "train")  # even a caller claiming to own it
    space = {"SPACE_ID": "me/s", "OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "secret",
             "SPACE_AUTHOR_NAME": "me"}  # fmt: skip
    signed = access_for(host="0.0.0.0", share=False, environ=space, admins=["ann"])
    assert signed.mode == "huggingface" and signed.owners == {"me", "ann"}
    assert signed.caller("me").owner and not signed.caller("bob").owner
    with pytest.raises(Forbidden, match="^sign in as the Space's owner to publish a run$"):
        signed.require_owner(signed.caller("bob"), "publish")
    assert signed.publish_namespaces() == ["ann", "me"]
    login = access_for(host="0.0.0.0", share=False, environ={"FT_PLUGIN_SPACE_AUTH": "a:pw-long-1"},
                       auth=["b:pw-long-2"], admins=["b"])  # fmt: skip
    assert login.mode == "password" and login.owners == {"b"} and not login.caller("a").owner
    assert "pw-long" not in repr(login) and "pw-long" not in login.describe()
    with pytest.raises(UserError, match="shorter than 8"):
        access_for(host="0.0.0.0", share=False, environ={}, auth=["a:short"])
    with pytest.raises(UserError, match="choose one way to sign in"):
        access_for(host="0.0.0.0", share=False, environ=space, auth=["a:pw-long-1"])
    with pytest.raises(UserError, match="127.0.0.1 only"):  # the stand-in signs anyone in
        access_for(host="0.0.0.0", share=False, environ={}, mock_sign_in=True)
    off = access_for(host="127.0.0.1", share=False, environ={}, training=False)
    with pytest.raises(Forbidden, match="training is off in this Space"):
        off.require_owner(off.caller(None), "train")


def test_secrets_stay_out_of_children_and_messages() -> None:
    env = child_environment({"HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET,
                             "FT_PLUGIN_SPACE_AUTH": "a:b", "OAUTH_CLIENT_SECRET": "x",
                             "AWS_SECRET_ACCESS_KEY": "k", "PATH": "/bin",
                             "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
    assert SECRET not in json.dumps(env) and "a:b" not in env.values()
    assert env["PATH"] == "/bin" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["HF_TOKEN_PATH"] == os.devnull and env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] == "1"
    text = f"error: /srv/space/data/train/x/data/rows.csv: bad row (token {SECRET})"
    assert redact(text, secrets=[SECRET]) == "error: rows.csv: bad row (token ***)"
    assert (
        redact("see ![x](http://evil/p.png)", markdown=True)
        == "see \\!\\[x\\]\\(http://evil/p.png\\)"
    )


def test_shown_errors_hide_the_token_and_server_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from ft_plugin.space.ui import shown_errors

    monkeypatch.setenv("HF_TOKEN", SECRET)

    @shown_errors
    def fails() -> None:
        raise UserError(f"cannot read /srv/space_data/train/x/secret.csv with {SECRET}\nmore")

    with pytest.raises(gr.Error) as caught:
        fails()
    assert caught.value.message == "cannot read secret.csv with ***"


# --------------------------------------------------------------------------- visitors


def test_a_visitor_can_train_stop_resume_serve_or_read_nothing(space) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    owners_run = start(space.owner, space)  # a run of the owner's, for a visitor to target
    before = jobs(space)
    attacks = {
        "code in a model folder": lambda: start(
            space.visitor, space, base=space.evil, overrides={"trust_remote_code": True, "max_steps": 1}
        ),
        "a plain training": lambda: start(space.visitor, space),
        "a server file as data": lambda: start(space.visitor, space, overrides={
            "datasets": [{"path": str(space.tmp / "notes.txt"), "type": "completion"}]}),
        "stop": lambda: space.visitor.predict(owners_run, api_name="/train_stop"),
        "resume": lambda: space.visitor.predict(owners_run, api_name="/train_resume"),
        "status": lambda: space.visitor.predict(owners_run, api_name="/train_status"),
        "serve": lambda: space.visitor.predict(owners_run, True, api_name="/train_serve"),
        "train on ratings": lambda: space.visitor.predict("", '{"max_steps": 1}',
                                                          api_name="/train_on_ratings"),
    }  # fmt: skip
    for name, attack in attacks.items():
        with pytest.raises(AppError, match=r"^sign in as the Space's owner to \w") as caught:
            attack()
        assert "\n" not in str(caught.value), name
    assert jobs(space) == before and not space.marker.exists()
    assert wait(space.owner, owners_run)["state"] == "done"  # the visitor's stop did nothing
    with pytest.raises(Forbidden, match="to publish a run"):  # the page's Publish, below it
        space.state.serving.publish(VISITOR, owners_run, "test-user/x")
    for method, args in {"upload": (None, "medical"), "history": (),
                         "export_gguf": (owners_run, "q4_k_m")}.items():  # fmt: skip
        with pytest.raises(Forbidden):
            getattr(space.state.training, method)(VISITOR, *args)


def test_visitors_compare_rate_and_evaluate_and_see_no_server_path(space) -> None:  # noqa: ANN001
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    base, tuned = space.visitor.predict(PROMPT, 4, api_name="/compare")
    saved = space.visitor.predict(PROMPT, base, tuned, 4, 4, 4, "b", api_name="/rate")
    assert "saved" in saved
    rows = space.tmp / "visitor-rows.jsonl"
    rows.write_text("".join(json.dumps({"instruction": f"What helps a cough, case {i}?",
                    "output": f"Rest and fluids (case {i})."}) + "\n" for i in range(3)),
                    encoding="utf-8")  # fmt: skip
    report = space.visitor.predict(handle_file(str(rows)), api_name="/evaluate")
    assert report["data"]["source"] == "visitor-rows.jsonl"
    assert str(space.tmp) not in json.dumps(report)  # no server path in what visitors read
    shown = [space.state.card.markdown(), space.state.card.training_metrics()]  # the Model card tab
    assert str(space.tmp) not in json.dumps(shown, default=str)
    long = space.tmp / "long-rows.jsonl"  # a 5 MB prompt would hold the model for minutes
    long.write_text(json.dumps({"instruction": "x" * 9000, "output": "y"}) + "\n")
    with pytest.raises(AppError, match="row 1, column instruction: longer than this Space's cap"):
        space.visitor.predict(handle_file(str(long)), api_name="/evaluate")


# --------------------------------------------------------------------------- the owner


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"overrides": {"trust_remote_code": True}}, "trust_remote_code is not a key this Space sets"),
        ({"overrides": {"datasets": [{"path": "/etc/hostname", "type": "completion"}]}},
         "datasets is not a key this Space sets"),
        ({"overrides": {"output_dir": "/tmp/elsewhere"}}, "output_dir is not a key"),
        ({"overrides": {"hub_model_id": "x/y", "hub": {"create_pr": True}}},
         "hub_model_id, hub are not keys this Space sets"),
        ({"overrides": {"lora_r=&a [1]": 8}}, "is not a key this Space sets"),
        ({"overrides": {"learning_rate": [1, 2]}}, "learning_rate: expected a number"),
        ({"base": "gpt2"}, "base model 'gpt2': not one this Space trains"),
        ({"template": "hf://attacker/t/evil.yaml"}, "not one of this Space's templates"),
        ({"template": "/etc/passwd.yaml"}, "not one of this Space's templates"),
        ({"overrides": {**QUICK, "max_steps": 50, "sequence_len": 2048, "micro_batch_size": 64,
                        "gradient_accumulation_steps": 64}}, "over this Space's cap of 8,192,000"),
    ],
)  # fmt: skip
def test_the_owner_cannot_run_code_reach_files_or_other_models(space, change, message) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    before = jobs(space)
    kwargs = {"overrides": {**QUICK, "max_steps": 2}} | change
    with pytest.raises(AppError, match=message.replace("[", r"\[")):
        start(space.owner, space, **kwargs)
    assert jobs(space) == before and not space.marker.exists()


def test_a_model_with_custom_code_fails_without_running_it_and_children_get_no_token(
    space,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)  # the Space's secret, for publishing
    run_id = start(space.owner, space, overrides={**QUICK, "max_steps": 40, "eval_steps": 1000})
    job = json.loads((space.train / run_id / "job.json").read_text())
    for _ in range(100):  # the child's environment, read while it runs
        job = json.loads((space.train / run_id / "job.json").read_text())
        if job.get("pid"):
            break
        time.sleep(0.1)
    environ = Path(f"/proc/{job['pid']}/environ").read_bytes().decode(errors="replace")
    assert SECRET not in environ and "HF_TOKEN=" not in environ
    space.owner.predict(run_id, api_name="/train_stop")
    status = wait(space.owner, run_id)
    assert SECRET not in json.dumps(status)
    evil_run = start(space.owner, space, base=space.evil)  # on the owner's list, still no code
    status = wait(space.owner, evil_run)
    assert status["state"] == "failed" and "contains custom code" in status["error"]
    assert not space.marker.exists()


def test_a_burst_of_visitors_is_capped_and_the_owner_status_stays_live(
    space,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from gradio_client import Client

    from ft_plugin.space import compare

    run_id = start(space.owner, space)
    real_generate = compare.generate_answer

    peak = []

    def slow_generate(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        peak.append(space.state.gate.in_use)  # running or waiting, as this one runs
        time.sleep(1.5)  # each answer holds the model a while, as a real model's would
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(compare, "generate_answer", slow_generate)
    outcomes: list[tuple[str, float]] = []
    clients = [Client(space.url, verbose=False) for _ in range(20)]  # 20 visitors' pages
    go = threading.Barrier(len(clients))

    def visitor(client) -> None:  # noqa: ANN001
        go.wait()  # all at once
        begun = time.monotonic()
        try:
            client.predict(PROMPT, 4, api_name="/compare")
            outcomes.append(("answered", time.monotonic() - begun))
        except Exception as exc:  # noqa: BLE001 - the refusal is what we count
            outcomes.append((str(exc), time.monotonic() - begun))
        finally:
            client.close()

    threads = [threading.Thread(target=visitor, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    latencies = []
    while any(thread.is_alive() for thread in threads):
        begun = time.monotonic()
        assert space.owner.predict(run_id, api_name="/train_status")["run_id"] == run_id
        latencies.append(time.monotonic() - begun)
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    answered = [seconds for outcome, seconds in outcomes if outcome == "answered"]
    refused = [(outcome, seconds) for outcome, seconds in outcomes if outcome != "answered"]
    print(f"burst: {len(answered)} answered, {len(refused)} refused (slowest refusal "
          f"{max((s for _, s in refused), default=0):.2f} s), peak {max(peak)} in; owner status "
          f"x{len(latencies)}: median {sorted(latencies)[len(latencies) // 2]:.3f} s, "
          f"max {max(latencies):.3f} s")  # fmt: skip
    assert max(peak) <= 4 and 1 <= len(answered) <= 4 and len(refused) >= 16, outcomes
    assert all("this Space is busy: 4 requests are running or waiting" in outcome
               for outcome, _ in refused), refused  # fmt: skip
    assert max(seconds for _, seconds in refused) < 5.0  # refused at once, not after waiting
    # answered throughout: typically in a tenth of a second; the slowest, as the burst
    # lands on a 2-core machine that also trains, in a couple of seconds
    assert len(latencies) >= 3 and max(latencies) < 5.0, latencies
    assert sorted(latencies)[len(latencies) // 2] < 0.5, latencies
    wait(space.owner, run_id)
