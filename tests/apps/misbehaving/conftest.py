"""The misbehaving apps are apps, not tests: pytest neither collects nor imports them
(they run only inside the sandbox, from tests/apps/test_misbehaving.py)."""

collect_ignore_glob = ["*/*"]
