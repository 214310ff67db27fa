"""Federated fine-tuning on Flower: sites that cannot pool their rows tune one adapter.

``ft-plugin federated RECIPE`` deals the data to clients (or gives each its own file),
starts Flower's Deployment Engine on 127.0.0.1 (a SuperLink and one SuperNode per
client, each its own process group), submits the Flower app in ``app/`` and writes a
normal run directory from the result. The ServerApp (:mod:`.server_app`) holds adapter
weights only; each ClientApp (:mod:`.client_app`) trains with ft-plugin's engine on its
own rows. Modules: :mod:`.partition` (IID, Dirichlet, by column), :mod:`.weights` (what
crosses the wire), :mod:`.layout` (``RUN_DIR/federated/``), :mod:`.deployment` (the
processes), :mod:`.run` and :mod:`.finish` (the command).
"""
