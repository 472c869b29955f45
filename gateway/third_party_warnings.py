"""Third-party warnings the daemon knows and lets pass, each by exact message, category and module.

Our own code's warnings stay visible (and are errors in the tests: ``pyproject.toml`` keeps the same list
for pytest). Call ``filter_known()`` before importing the library concerned.
"""

from __future__ import annotations

import warnings


def filter_known() -> None:
    """Hide the third-party warnings listed here, and only those."""
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # pragma: no cover - cryptography comes with asyncssh
        return
    # asyncssh still names cryptography's DSA classes in its type aliases, deprecated in cryptography 51;
    # fluxdepot offers and accepts no DSA key.
    warnings.filterwarnings(
        "ignore",
        message="DSA is deprecated",
        category=CryptographyDeprecationWarning,
        module=r"asyncssh\.crypto\.(dsa|misc)",
    )
