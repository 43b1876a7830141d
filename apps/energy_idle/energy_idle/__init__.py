"""Idle energy: an andon app (see ../andon-app.yaml and andon's docs/apps.md)."""
