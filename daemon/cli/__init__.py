"""The ``jackgen`` command line (``main``) and the offline tools it runs in its own process:
bounce, record, demo, install-units and the JACK helpers they use.

Kept free of imports so ``jackgen --help`` and the remote commands start quickly."""
