"""The edge agent's site file (``andon edge --config site.yaml``), validated by pydantic with
errors that name the file, the line and the field.

.. code-block:: yaml

    edge: {id: edge-1, token_env: ANDON_EDGE_TOKEN}
    data_dir: /var/lib/andon-edge
    buffer: {max_bytes: 2000000000, policy: drop_oldest}
    uplink: {host: 127.0.0.1, port: 1883}
    connectors:
      - {type: modbus, name: press-1, host: 127.0.0.1, port: 5020, registers: [...]}

>>> cfg = parse_edge_config("edge: {id: e1, token: t}\\ndata_dir: /tmp/x\\nconnectors: []\\n")
>>> cfg.edge.id, cfg.buffer.policy.value, cfg.uplink.port
('e1', 'drop_oldest', 1883)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from andon.edge.buffer import DropPolicy
from andon.model.loader import ModelError, read_yaml, validation_error

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

    @model_validator(mode="after")
    def _one_token(self) -> EdgeSection:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of 'token' and 'token_env'")
        return self

    def resolved_token(self) -> str:
        if self.token is not None:
            return self.token
        value = os.environ.get(self.token_env or "")
        if not value:
            raise ValueError(f"environment variable {self.token_env} is not set")
        return value


class BufferSection(_Section):
    max_bytes: int = Field(1 << 30, gt=0)
    policy: DropPolicy = DropPolicy.DROP_OLDEST


class UplinkSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    window: int = Field(16, gt=0)
    ack_timeout_s: float = Field(5.0, gt=0)
    username: str | None = None
    password: str | None = None


class EdgeConfig(_Section):
    edge: EdgeSection
    data_dir: Path
    buffer: BufferSection = BufferSection()
    uplink: UplinkSection = UplinkSection()
    status_interval_s: float = Field(1.0, gt=0)
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
