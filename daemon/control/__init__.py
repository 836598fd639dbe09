"""The control process: session state and persistence, the engine link, streams, chains, the
master, MIDI mapping and status. Non-real-time (asyncio); talks to the engine only through the
shared-memory rings. Front ends (OSC, HTTP) sit on top of it and are never imported from here."""
