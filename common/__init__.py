"""What several jackgen processes share: process titles, sd_notify, the JSON-lines link to child
processes, supervised children, atomic file writes, user-facing errors, take ids and the media
path policy (which file names a request may use).

Imports nothing else of jackgen's, so ``generators`` and ``daemon`` both build on it.
"""
