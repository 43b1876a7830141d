"""``andon.apps.testing``: the test harness behind ``andon app test`` (decision 0901).

``run_app_test(app_dir, datasets)`` runs an app sandboxed on replayed datasets with ground
truth and returns a ``AppTestReport`` of every check and figure; ``render_html`` makes the
readable page. The datasets come from the composition root (``andon.commands.app_test``).
"""

from __future__ import annotations

from andon.apps.testing.harness import (
    LEAD_WINDOW_S,
    AppTestReport,
    Check,
    DamagedStore,
    Dataset,
    GroundTruthFault,
    GroundTruthState,
    run_app_test,
    standby_saving_truth,
)
from andon.apps.testing.report import render_html

__all__ = [
    "LEAD_WINDOW_S",
    "AppTestReport",
    "Check",
    "DamagedStore",
    "Dataset",
    "GroundTruthFault",
    "GroundTruthState",
    "render_html",
    "run_app_test",
    "standby_saving_truth",
]
