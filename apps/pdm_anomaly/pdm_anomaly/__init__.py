"""pdm_anomaly: anomalies in machine condition per operating regime, with the signals that
made them (``pdm_anomaly.app``); its arithmetic in ``pdm_anomaly.detect``."""
