"""The proxies' names and the work's defaults, light to import (no torch): for the command line's
options and checks."""

from __future__ import annotations

from nbcompile.errors import ConfigError

#: The proxies computed from the compiler's plan alone (no network is built).
PLAN_PROXY_NAMES: tuple[str, ...] = ("params", "flops")
#: The proxies computed from a network (and, but for ``synflow``, one batch of data).
NETWORK_PROXY_NAMES: tuple[str, ...] = ("synflow", "snip", "grasp", "fisher", "grad_norm", "jacob_cov", "nwot")
#: Every proxy, in table order.
PROXY_NAMES: tuple[str, ...] = (*PLAN_PROXY_NAMES, *NETWORK_PROXY_NAMES)
#: The proxies whose value depends on the network alone, not on data.
DATA_FREE: frozenset[str] = frozenset({"params", "flops", "synflow"})

#: Cells per chunk of work unless told otherwise: large enough that a chunk's overhead (a file, a
#: task) does not count, small enough that an interrupted run loses little.
DEFAULT_CHUNK_SIZE = 64


def parse_proxy_names(text: str, flag: str = "--proxies") -> tuple[str, ...]:
    """The proxies named in a comma-separated list, in table order; ConfigError for an unknown
    name or an empty list."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"{flag}: name at least one proxy ({', '.join(PROXY_NAMES)})")
    unknown = [name for name in names if name not in PROXY_NAMES]
    if unknown:
        raise ConfigError(f"{flag}: unknown proxy {unknown[0]!r} (known: {', '.join(PROXY_NAMES)})")
    return tuple(name for name in PROXY_NAMES if name in names)
