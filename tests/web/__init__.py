"""Browser tests of the web dashboard (Playwright with Debian's Chromium)."""
