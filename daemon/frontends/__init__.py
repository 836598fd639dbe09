"""Control's front ends: the command table, the OSC server and the HTTP API. Each turns a request
into a call on control and its answer or error into a reply; none keeps state of its own."""
