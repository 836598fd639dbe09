"""Process names (``jackgen: engine``…) so ps, top and the journal show each role."""

from __future__ import annotations


def set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # optional at run time; the process just keeps its argv name
        return
    setproctitle.setproctitle(title)
