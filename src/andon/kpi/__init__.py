"""Key performance indicators: OEE (ISO 22400), energy from meters."""

from andon.kpi.energy import counter_delta
from andon.kpi.oee import OEE, compute_oee

__all__ = ["OEE", "compute_oee", "counter_delta"]
