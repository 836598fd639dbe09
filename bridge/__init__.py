"""Shared-memory rings, the message schema, and (later) the Redis queue.

Imports nothing else from jackgen: ``generators`` and ``daemon`` build on it.
"""
