"""``python -m skfarho``: skfarho against GridSearchCV on a built-in data set.

Run ``python -m skfarho --help`` for the options; the logic lives in
:mod:`skfarho._cli`.
"""

from skfarho._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
