"""A stop, told apart from a cancelled future.

A ``CancelledError`` reaches the pipeline's code two ways: the task running it is being
cancelled (Faust or mode stopping an agent or the worker: a *stop*, to be let through), or a
future it awaited was cancelled by someone else (a client cancelling a produce it could not
finish). The second is no stop: taken for one, it ended the agent (Faust's supervisor
restarted it), read the batch again at once without back-off, never counted it, and dropped a
produce that nothing retried. Python 3.11's ``Task.cancelling()`` tells the two apart.
"""

from __future__ import annotations

import asyncio


def stopping() -> bool:
    """Whether the running task has been asked to stop (``task.cancel()``), rather than
    having met the ``CancelledError`` of a future something else cancelled."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nothing to stop
        return False
    return task is not None and task.cancelling() > 0


class Cancelled(RuntimeError):
    """Work was cancelled, not by a stop of the task waiting for it: a failure like any other
    (retried with back-off), never mistaken for a stop."""
