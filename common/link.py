"""Exit codes the supervised processes share.

(The feeder talks to control over a unix socket, ``jackgen.generators.feeder``; generator workers
take their jobs from the Redis queue.)
"""

from __future__ import annotations

EXIT_UNAVAILABLE = 4  # a worker's exit code for "this backend cannot run here": it is not restarted
EXIT_RINGS_REPLACED = 5  # the engine or the feeder found new rings under the instance's names: restart it
