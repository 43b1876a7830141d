"""Plain MQTT with JSON payloads: topic filters mapped to signals, fields extracted by path.

.. code-block:: yaml

    - type: mqtt_json
      name: sensors
      topics:
        - filter: factory/+/temperature      # MQTT subscription filter
          signal: site/hall/{1}/temperature  # {n}: level n of the message's topic
          value: data.celsius                # dotted path into the JSON document
          timestamp: ts                      # optional; epoch ms by default
          timestamp_unit: ms                 # s | ms | us | iso
          kind: auto                         # auto | number | text (decision 0202)

With ``kind: auto`` a number is a sample (a boolean 0/1) and a string a text value, unchanged;
``number`` refuses strings, ``text`` reads numbers as their JSON text. A message that is not
JSON, lacks the field, carries an object, a list, null, NaN or a timestamp far in the future
or past is refused, counted by reason in the connector's health and logged. "Far in
the future" is ``future_tolerance_s`` (default 12 h) ahead of the edge's clock: enough for an
edge clock that runs slow, not for a timestamp in the wrong unit; the platform refuses samples
more than 5 minutes ahead of its own clock (decision 0312).
"""

from __future__ import annotations

from andon.connect.mqtt.json_connector import (
    MANIFEST,
    MqttJsonConfig,
    MqttJsonConnector,
    TopicMap,
    extract,
)
from andon.connect.registry import ConnectorType, register

__all__ = ["MANIFEST", "MqttJsonConfig", "MqttJsonConnector", "TopicMap", "extract"]

register(ConnectorType(MANIFEST, MqttJsonConfig, MqttJsonConnector))
