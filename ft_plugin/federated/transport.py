"""Where the SuperLink listens and what secures it (``federated.superlink``).

Flower 1.42's ``flower-superlink`` opens one HTTP(S) port (``--host``/``--port``) that
serves the Fleet API (SuperNodes), the Control API (``flwr run``, ``flwr supernode
register``) and the Runtime API (its ServerApp process). Its older gRPC Fleet and
Control APIs (0.0.0.0:9092 and 0.0.0.0:9093 by default) start only when
``FLWR_INTERNAL_GRPC_FLEET_API`` / ``FLWR_INTERNAL_GRPC_CONTROL_API`` are "1", so
:data:`CLOSED_ENV` is removed from every process we start; the health server starts
only with ``--health-server-address``, which we never pass. A ``flower-supernode``
opens its own Runtime API for its ClientApp processes (``--host``, given as 127.0.0.1).

Two ways to run, chosen by the settings:

- **local** (no TLS files, a loopback address: the default): the SuperLink listens on
  127.0.0.1 (a free port unless one is given) and this command starts the sites as
  SuperNodes on the same machine;
- **secure** (TLS files and site keys given): the SuperLink listens on the address with
  TLS and ``--enable-supernode-auth``, each site's public key is registered, and the
  sites start their own SuperNodes wherever they are. Any non-loopback address needs
  this: without the files it is refused, with one line naming what is missing.

Example:
    >>> split_address("0.0.0.0:9092"), split_address("[::1]:80"), split_address("localhost")
    (('0.0.0.0', 9092), ('::1', 80), ('localhost', None))
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

CLOSED_ENV = ("FLWR_INTERNAL_GRPC_FLEET_API", "FLWR_INTERNAL_GRPC_CONTROL_API")
TLS_KEYS = ("ssl_certfile", "ssl_keyfile", "ssl_ca_certfile")
DEFAULT_SECURE_PORT = 9092  # Flower's documented Fleet API port


def split_address(address: str) -> tuple[str, int | None]:
    """(host, port or None) of ``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
        raise UserError(f"federated.superlink.address: {address!r} is not HOST or HOST:PORT")
    return host, int(port) if port else None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; every other name or address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Transport:
    """How this federation's SuperLink is started and reached."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port, chosen at start
    certfile: Path | None = None
    keyfile: Path | None = None
    ca_certfile: Path | None = None
    public_keys: tuple[Path, ...] = ()

    @property
    def secure(self) -> bool:
        return self.certfile is not None

    def connect_host(self) -> str:
        """The host this machine's own processes (the Flower CLI, local SuperNodes)
        connect to: a bind-all address is reached on loopback, as Flower does."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)

    def address(self, port: int) -> str:
        """``HOST:PORT`` (IPv6 in brackets) on :meth:`connect_host`."""
        host = self.connect_host()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def superlink_flags(self) -> list[str]:
        """``flower-superlink`` flags: TLS and SuperNode authentication, or ``--insecure``."""
        if not self.secure:
            return ["--insecure"]
        return ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile),
                "--ssl-ca-certfile", str(self.ca_certfile), "--enable-supernode-auth"]  # fmt: skip

    def connection_toml(self, name: str, port: int) -> str:
        """The Flower CLI's connection to this SuperLink (``FLWR_HOME/config.toml``)."""
        tls = (f"root-certificates = {json.dumps(str(self.ca_certfile))}\n" if self.secure
               else "insecure = true\n")  # fmt: skip
        return (f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\n'
                f'address = "{self.address(port)}"\n{tls}')  # fmt: skip


def transport_for(settings: Any) -> Transport:
    """The transport ``federated.superlink`` asks for (relative paths from the current
    folder, as for data files); :class:`UserError` for a non-loopback address without TLS and site keys, or for a
    partial set of files."""
    section = getattr(settings, "superlink", None)
    if section is None:
        return Transport()
    host, port = split_address(section.address)
    files = {key: getattr(section, key) for key in TLS_KEYS}
    keys = list(section.supernode_public_keys or [])
    given = [k for k, v in files.items() if v] + (["supernode_public_keys"] if keys else [])
    if not given and is_loopback(host):
        return Transport(host=host, port=port)
    missing = [k for k in (*TLS_KEYS, "supernode_public_keys") if k not in given]
    if missing:
        why = ("is not loopback: sites on other machines need" if not is_loopback(host)
               else "with TLS files needs all of")  # fmt: skip
        raise UserError(
            f"federated.superlink.address {section.address} {why} TLS and SuperNode "
            f"authentication; give federated.superlink.{', '.join(missing)} (the SuperLink's "
            "certificate, key and CA as PEM files, and one EC public key file per site)"
        )
    paths = {k: _existing(v, f"federated.superlink.{k}") for k, v in files.items()}
    publics = tuple(
        _existing(v, f"federated.superlink.supernode_public_keys.{i}") for i, v in enumerate(keys)
    )
    return Transport(host, port or DEFAULT_SECURE_PORT, paths["ssl_certfile"],
                     paths["ssl_keyfile"], paths["ssl_ca_certfile"], publics)  # fmt: skip


def _existing(value: str, key: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"{key}: no file {path}")
    return path.resolve()
