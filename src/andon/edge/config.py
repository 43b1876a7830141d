"""The edge agent's site file (``andon edge --config site.yaml``), validated by pydantic with
errors that name the file, the line and the field. A complete example (the test suite parses
it, connectors included):

.. code-block:: yaml

    edge: {id: edge-1}
    data_dir: /var/lib/andon-edge
    buffer: {max_bytes: 2000000000, policy: drop_oldest}
    uplink: {host: broker.example, port: 8883, tls: true, ca_file: /etc/andon/ca.pem,
             key_env: ANDON_EDGE_KEY}
    # or, over the platform's HTTPS API:
    # uplink: {kind: https, url: "https://platform.example", site: <site id>,
    #          key_env: ANDON_EDGE_KEY, ca_file: /etc/andon/ca.pem}
    connectors:
      - type: modbus
        name: presses
        devices:
          - name: press-1
            host: 192.168.10.20
            port: 502
            unit: 1
            poll_s: 1.0
            points:
              # addresses are 0-based protocol addresses: "40001" in a manual is holding 0
              - {signal: plant/press/line-1/press-1/temperature, table: holding, address: 0,
                 type: float32, word_order: big}
              - {signal: plant/press/line-1/press-1/running, table: coil, address: 0}
      - type: opcua
        name: machining
        url: opc.tcp://192.168.10.30:4840
        nodes:
          - {node_id: "ns=2;s=vmc1.spindle_speed",
             signal: plant/machining/cell-1/vmc-1/spindle_speed}

Both uplinks authenticate with the edge's platform edge key (``andon_<id>_<secret>``, made by
``POST /api/v1/api-keys`` with ``kind: edge``); over MQTT its id and secret are also the broker
login unless ``username``/``password`` say otherwise. With ``cert_file``/``key_file`` the edge
presents a client certificate; a broker that takes the certificate's CN as the user name
(Mosquitto's ``use_identity_as_username``, decision 0316) needs the CN to be the key's id, which
``resolved_key`` checks unless ``username`` is set. An MQTT uplink with ``url`` and ``site``
also reports connection health to the API.

>>> cfg = parse_edge_config("edge: {id: e1}\\ndata_dir: /tmp/x\\nuplink: {key_env: K}\\n")
>>> cfg.edge.id, cfg.buffer.policy.value, cfg.uplink.port
('e1', 'drop_oldest', 1883)
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from andon.edge.buffer import DropPolicy
from andon.model.loader import ModelError, read_yaml, validation_error
from andon.wire.frames import key_parts
from andon.wire.net import tls_context

__all__ = [
    "BufferSection",
    "EdgeConfig",
    "EdgeSection",
    "UplinkSection",
    "load_edge_config",
    "parse_edge_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EdgeSection(_Section):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    token: str | None = None
    token_env: str | None = None
    """Gone: refused with a message saying what replaces them."""

    @model_validator(mode="after")
    def _no_token(self) -> EdgeSection:
        if self.token is not None or self.token_env is not None:
            raise ValueError(
                "the per-edge token is gone: edges authenticate with a platform edge key "
                "(POST /api/v1/api-keys, kind edge); remove 'token'/'token_env' and set "
                "uplink.key_env (or uplink.key)"
            )
        return self


class BufferSection(_Section):
    max_bytes: int = Field(1 << 30, gt=0)
    policy: DropPolicy = DropPolicy.DROP_OLDEST
    reserve_bytes: int = Field(4 << 20, ge=0)
    """Disk held back for a full disk (``EdgeBuffer.open``): what lets the buffer still
    acknowledge and drop when the disk fills below ``max_bytes``. 0: none."""


def _secret(value: str | None, env: str | None, what: str) -> str | None:
    if value is not None:
        return value
    if env is None:
        return None
    found = os.environ.get(env)
    if not found:
        raise ValueError(f"environment variable {env} ({what}) is not set")
    return found


def _certificate_cn(path: str) -> str | None:
    """The subject CN of the first certificate in the PEM file ``path``; a ``ValueError``
    naming the file when it cannot be read."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"uplink.cert_file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"uplink.cert_file {path}: not a PEM certificate ({exc})") from None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


class UplinkSection(_Section):
    """Where the edge forwards to: the platform's MQTT broker (``kind: mqtt``, frames
    acknowledged on a topic) or its HTTPS API (``kind: https``, frames POSTed to
    ``{url}/api/v1/sites/{site}/ingest``). Both authenticate with the edge's platform edge
    key (``key`` or ``key_env``). An MQTT uplink may also name the API (``url`` and
    ``site``): the edge then reports its connection health there too, as an HTTPS uplink
    does."""

    kind: Literal["mqtt", "https"] = "mqtt"
    # mqtt
    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    # https
    url: str | None = Field(None, pattern=r"^https?://\S+$")
    site: str | None = Field(None, min_length=1)
    key: str | None = None
    key_env: str | None = None
    # both
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    window: int = Field(16, gt=0)
    ack_timeout_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _fits_kind(self) -> UplinkSection:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give at most one of 'password' and 'password_env'")
        if self.kind == "https" or self.url is not None or self.site is not None:
            what = "an https uplink" if self.kind == "https" else "health reports to the API"
            if self.url is None or self.site is None:
                raise ValueError(f"{what} needs 'url' and 'site'")
        if (self.key is None) == (self.key_env is None):
            raise ValueError(
                f"an {self.kind} uplink needs exactly one of 'key' and 'key_env' "
                "(the edge's platform edge key)"
            )
        return self

    @property
    def reports_to_api(self) -> bool:
        """An MQTT uplink that also names the platform's API (for health reports)."""
        return self.kind == "mqtt" and self.url is not None

    def api_tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for the API: for ``https://`` urls, trusting ``ca_file``."""
        if not (self.url or "").startswith("https://"):
            return None
        return tls_context(self.ca_file)

    def resolved_password(self) -> str | None:
        return _secret(self.password, self.password_env, "MQTT uplink password")

    def resolved_key(self) -> str:
        """The edge's platform edge key; a ``ValueError`` when unset, or malformed for MQTT
        (which logs in with its parts; over HTTPS the platform judges the bearer)."""
        key = _secret(self.key, self.key_env, "edge API key") or ""
        parts = key_parts(key)
        if self.kind == "mqtt" and parts is None:
            where = f"environment variable {self.key_env}" if self.key_env else "uplink.key"
            raise ValueError(f"{where} is not a platform edge key (andon_<id>_<secret>)")
        if self.kind == "mqtt" and parts is not None and self.cert_file and not self.username:
            cn = _certificate_cn(self.cert_file)
            if cn != parts[0]:
                raise ValueError(
                    f"uplink.cert_file {self.cert_file}: the certificate's CN is {cn!r}, not "
                    f"the edge key's id {parts[0]!r}; a broker that takes the CN as the user "
                    "name would let this edge publish on no topic of its key (issue the "
                    "certificate with CN = the key id, or set uplink.username)"
                )
        return key

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context: always for ``https://`` urls, for MQTT when ``tls`` is set."""
        https = self.kind == "https" and (self.url or "").startswith("https://")
        if not (self.tls or https):
            return None
        return tls_context(self.ca_file, self.cert_file, self.key_file)


class EdgeConfig(_Section):
    edge: EdgeSection
    data_dir: Path
    buffer: BufferSection = BufferSection()
    uplink: UplinkSection
    status_interval_s: float = Field(1.0, gt=0)
    health_interval_s: float = Field(15.0, gt=0)
    """How often an https uplink POSTs the connection health to the platform."""
    linger_s: float = Field(0.05, ge=0)
    """Small connector batches arriving within this time are merged into one buffer write."""
    max_batch_points: int = Field(50_000, gt=0)
    connectors: list[dict[str, Any]] = Field(default_factory=list)


def parse_edge_config(
    text: str, file: str = "<string>", marks_out: dict[Any, Any] | None = None
) -> EdgeConfig:
    """Parse and validate a site file; raises ``ModelError`` on the first problem."""
    marks: dict[Any, Any] = {} if marks_out is None else marks_out
    data = read_yaml(text, file, marks)
    if not isinstance(data, dict):
        raise ModelError(file, 1, 1, "", "a site file is a mapping with an 'edge' key")
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, file, marks) from None


def load_edge_config(path: str | Path) -> tuple[EdgeConfig, dict[Any, Any]]:
    """Read a site file; returns the config and the YAML positions (for connector errors)."""
    marks: dict[Any, Any] = {}
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(str(p), None, None, "", f"cannot read: {exc.strerror}") from None
    return parse_edge_config(text, str(p), marks), marks
