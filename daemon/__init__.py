"""The jackgen processes: engine (JACK), control (state, HTTP), feeder, CLI."""
