"""Work directories: checked before anything is written, refused with one line."""

import os
import pathlib

from keras_rank.core.errors import ConfigError


def _refuse(folder: str | os.PathLike, argument: str, reason: str) -> ConfigError:
    return ConfigError(f"{argument} '{folder}' is not a writable folder: {reason}.")


def check_writable_folder(
    folder: str | os.PathLike, argument: str = "workdir"
) -> pathlib.Path:
    """Checks, writing nothing, that `folder` is or can become a writable folder.

    Args:
        folder: The folder.
        argument: The argument or flag that named it, for the message.

    Returns:
        The folder as a path.

    Raises:
        ConfigError: A file (not a folder) has its name or the name of one
            of its parents, or the nearest existing folder is not writable.
    """
    path = pathlib.Path(folder)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "it" if existing == path else f"'{existing}'"
        raise _refuse(folder, argument, f"{what} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _refuse(folder, argument, f"'{existing}' is not writable")
    return path


def make_writable_folder(
    folder: str | os.PathLike, argument: str = "workdir"
) -> pathlib.Path:
    """Creates `folder` if needed and checks that files can be written in it.

    Args:
        folder: The folder.
        argument: The argument or flag that named it, for the message.

    Returns:
        The folder as a path.

    Raises:
        ConfigError: If the folder cannot be created or written.
    """
    path = check_writable_folder(folder, argument)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise _refuse(folder, argument, error.strerror or str(error)) from error
    return path
