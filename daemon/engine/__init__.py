"""The engine process: the only one with a JACK process callback.

``driver`` is the JACK client; ``blockcore`` the per-block function it calls (and bounce calls
offline), with the real-time rules at its top; ``masterchain`` the master bus's plugin chain and
its loader thread; ``jacktime`` libjack functions JACK-Client lacks.
"""
