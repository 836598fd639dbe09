"""systemd unit templates (``*.in``), rendered by ``jackgen install-units``."""
