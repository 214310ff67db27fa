"""Federated fine-tuning on Flower: sites that cannot pool their rows tune one adapter.

``ft-plugin federated RECIPE`` deals the data to clients (or gives each its own file),
starts Flower's Deployment Engine on 127.0.0.1 (a SuperLink and one SuperNode per
client, each its own process group; or, with ``federated.superlink`` TLS files, a
SuperLink that real sites join), submits the Flower app in ``app/`` and writes a
normal run directory from the result. The ServerApp (:mod:`.server_app`) holds adapter
weights only; each ClientApp (:mod:`.client_app`) trains with ft-plugin's engine on its
own rows, from its own recipe: the server sets only hyper-parameters and the adapter's
shape (:mod:`.site_recipe`), and screens every update before averaging it
(:mod:`.screening`: keys, shapes, dtypes, finite values, update norm, bounded example
counts). Modules: :mod:`.partition` (IID, Dirichlet, by column), :mod:`.weights` (what
crosses the wire), :mod:`.layout` (``RUN_DIR/federated/``), :mod:`.deployment` (the
processes), :mod:`.transport` (loopback, or TLS with SuperNode authentication),
:mod:`.run` and :mod:`.finish` (the command).
"""
