"""
Writing files and folders so that a failure or Ctrl-C never leaves a half-written one.

Each writer works in a temporary name beside its target and moves the result into place
(``os.replace``, atomic on one file system) only once it is complete.
"""

import os
import tempfile


def write_text_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path),
                                         suffix='.tmp')
    try:
        with os.fdopen(handle, 'w') as f:
            f.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
