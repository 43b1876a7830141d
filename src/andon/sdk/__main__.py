"""``python -m andon.sdk package.module:main``: run an app's entry (see ``runner``)."""

from __future__ import annotations

import sys

from andon.sdk.runner import load_entry, run


def _cli(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m andon.sdk package.module:main", file=sys.stderr)
        return 2
    try:
        main = load_entry(argv[0])
    except ValueError as exc:
        print(f"andon.sdk: {exc}", file=sys.stderr)
        return 2
    run(main)
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
