"""
Writing files and folders so that a failure or Ctrl-C never leaves a half-written one.

Each writer works in a temporary name beside its target and moves the result into place
(``os.replace``, atomic on one file system) only once it is complete.
"""

import contextlib
import os
import shutil
import tempfile


def file_mode(path):
    """Return the permissions a file written at ``path`` should have: its own, else the umask's."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def replacing(path, mode=None):
    """
    Yield a binary file whose content replaces ``path`` once the ``with`` block ends normally.

    The file is a temporary one beside ``path``; it is flushed to disk, given ``mode`` (default:
    ``path``'s own permissions, or the umask's for a new file; mkstemp's are private, 0600) and
    moved into place. When the block raises, it is removed and ``path`` stays as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path),
                                         suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, file_mode(path) if mode is None else mode)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file beside it (keeping its permissions)."""
    with replacing(path) as f:
        f.write(text.encode())


def copy_atomically(source, target):
    """Copy ``source`` to ``target`` through a temporary file beside it (``replacing``)."""
    with replacing(target) as f, open(source, 'rb') as original:
        shutil.copyfileobj(original, f)


def refuse_overlap(output, inputs):
    """
    Raise ValueError when ``output`` is one of ``inputs``, contains one or lies inside one.

    Paths are compared after resolving symbolic links, '.', '..' and trailing slashes, so no
    spelling of the input passes as another place.
    """
    out = os.path.realpath(output)
    for given in inputs:
        source = os.path.realpath(given)
        if out == source:
            raise ValueError(f"output '{output}' is the input '{given}'")
        if source.startswith(out + os.sep):
            raise ValueError(f"output '{output}' contains the input '{given}'")
        if out.startswith(source + os.sep):
            raise ValueError(f"output '{output}' lies inside the input '{given}'")


def check_writable_folder(path, what='output'):
    """Raise ValueError unless the folder that will hold ``path`` exists and can be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what} '{path}': the folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} '{path}': the folder '{folder}' cannot be written")


@contextlib.contextmanager
def staged_folder(path, overwrite=False):
    """
    Yield a path beside ``path`` to create a folder at; move it to ``path`` once complete.

    The folder is made in a hidden temporary folder next to ``path``. When the ``with`` block
    ends normally it replaces ``path`` (an existing one only with ``overwrite``, and only
    then); when the block raises, the new folder is removed and ``path`` is left as it was.
    Raises ValueError for a ``path`` that exists without ``overwrite``, or whose folder is
    missing or read-only.
    """
    if not os.fspath(path).strip():  # '' would stage beside the current folder's parent
        raise ValueError('the output path is empty')
    out, here = os.path.realpath(path), os.path.realpath(os.getcwd())
    if here == out or here.startswith(out + os.sep):  # '.' or '..': it would replace them
        raise ValueError(f"output '{path}' is or holds the working folder; name a new folder")
    if os.path.lexists(path) and not overwrite:
        raise ValueError(f"output '{path}' exists (use --overwrite to replace it)")
    check_writable_folder(path)
    name = os.path.basename(os.path.normpath(path))
    staging = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix=f'.{name}.', suffix='.partial')
    try:
        new = os.path.join(staging, name)
        yield new
        if os.path.lexists(path):  # the old output goes only now that the new one is complete
            os.replace(path, os.path.join(staging, 'replaced'))
        os.replace(new, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_output_file(path, what='output', inputs=()):
    """
    Raise ValueError unless a file can be written at ``path`` without harm.

    Its folder must exist and be writable, ``path`` must not be a folder, and it must not be,
    contain or lie inside one of ``inputs`` (refuse_overlap).
    """
    check_writable_folder(path, what)
    if os.path.isdir(path):
        raise ValueError(f"{what} '{path}' is a folder, not a file")
    try:
        refuse_overlap(path, [given for given in inputs if given])
    except ValueError as error:
        raise ValueError(f'{what}: {error}') from None


def missing_folder(option, path):
    """Return why the input folder ``path`` given as ``option`` cannot be read, or ''."""
    return '' if os.path.isdir(path) else f"{option} '{path}' is not a folder"


def missing_input(option, path):
    """Return why the input ``path`` given as ``option`` cannot be read as a file, or ''."""
    if not os.path.exists(path):
        return f"{option} '{path}' does not exist"
    if not os.path.isfile(path):
        return f"{option} '{path}' is not a file"
    return ''


def unwritable(args, names, inputs=(), paths=()):
    """
    Return why one of the output file options ``names`` of ``args`` cannot be written, or ''.

    For a command to say in one line, before any work, that its output would fail at the end
    or overwrite what it reads: each output is checked (check_output_file) against the paths
    of the options ``inputs``, the other outputs and ``paths`` (inputs that are no option,
    e.g. a bundled sample). Options left empty are not checked.
    """
    for name in names:
        path = getattr(args, name)
        if path:
            others = [getattr(args, other) for other in (*inputs, *names) if other != name]
            others += paths
            try:
                check_output_file(path, '--' + name.replace('_', '-'), others)
            except ValueError as error:
                return str(error)
    return ''
