"""Methods from outside the package: Python modules that register their own entries (a backbone, a frame head,
an extra loss, a label source, a gating, a selection rule; avvp.registry) before any row is resolved.

`avvp` imports the modules named in the environment variable AVVP_PLUGINS (comma-separated) before it reads its
arguments; the workflow imports those of its config key `plugins` and passes them on to every job the same way.
A plugin's rows and tables live in the user's own sheets (`--variants-file`, `--tables`;
docs/adding-a-method.md).
"""

from __future__ import annotations

import importlib
import os

from avvp.errors import AvvpError

ENV = "AVVP_PLUGINS"


def from_env() -> list[str]:
    """The plugin modules named by AVVP_PLUGINS."""
    return [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]


def load(modules) -> None:
    """Import each plugin module (once: Python keeps it); one line naming the module when it cannot be imported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise AvvpError(f"plugin '{name}': cannot import it ({type(e).__name__}: {e})") from None
