"""Generation jobs on the control side: the queue, dispatch to worker processes, job events."""
