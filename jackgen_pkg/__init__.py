"""jackgen: a headless real-time audio host for AI music production.

Packages: ``jackgen.bridge`` (shared-memory rings, schema), ``jackgen.common`` (what the processes
share), ``jackgen.dsp`` (array DSP), ``jackgen.plugins`` (plugin hosting), ``jackgen.generators``
(workers and backends), ``jackgen.daemon`` (engine, control, front ends, jobs, CLI). The README's
"How it is built" section is the map.
"""

__version__ = "0.1.0"
