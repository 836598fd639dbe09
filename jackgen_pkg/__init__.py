"""jackgen: a headless real-time audio host for AI music production.

Packages: ``jackgen.bridge`` (shared-memory rings, schema), ``jackgen.dsp`` (pure
numpy DSP), ``jackgen.generators`` (workers and backends), ``jackgen.daemon``
(engine, control, CLI). See DESIGN.md in the shared folder for the map.
"""

__version__ = "0.1.0"
