"""Makes the app's package importable by its tests (pytest puts this directory on
sys.path)."""
