"""Generator workers and backends (procedural, fluidsynth, musicgen)."""
