"""A clock read outside the workflow module, as code the workflow passes through would do it."""

import time


def now() -> float:
    return time.time()
