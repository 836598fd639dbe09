"""The jackgen processes, one subpackage per role: ``engine`` (the JACK client and its per-block
core), ``control`` (state, session, streams, chains, MIDI), ``frontends`` (OSC, HTTP),
``jobs`` (generation jobs) and ``cli`` (the command line and the offline tools)."""
