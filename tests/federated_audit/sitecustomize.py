"""Test-only: every Python process started with this folder on PYTHONPATH records the
client data files it opens (sys.addaudithook), in FT_PLUGIN_TEST_AUDIT_DIR/NODE-PID.txt,
where NODE is the site the process works for (FT_PLUGIN_FEDERATED_NODE, "none" if unset)."""

import os
import sys

_folder = os.environ.get("FT_PLUGIN_TEST_AUDIT_DIR")
if _folder:
    _node = os.environ.get("FT_PLUGIN_FEDERATED_NODE", "none")
    _log = open(os.path.join(_folder, f"{_node}-{os.getpid()}.txt"), "a", buffering=1)  # noqa: SIM115

    def _record(event, args):  # noqa: ANN001, ANN202
        if (
            event == "open"
            and isinstance(args[0], str | bytes)
            and "/federated/clients/" in os.fsdecode(args[0])
        ):
            _log.write(os.fsdecode(args[0]) + "\n")

    sys.addaudithook(_record)
