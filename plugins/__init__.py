"""Plugin hosting: VST3 and pedalboard built-ins behind one ``Plugin``/``Chain`` surface
(``host``), loading in a child process so a plugin that crashes or hangs cannot take its host
with it (``isolate``), and the chain stage a producer runs just ahead of the playhead
(``chainstage``). The engine (master chain) and the producers (track chains) both use it.

Imports only ``jackgen.dsp`` and ``jackgen.bridge``.
"""
