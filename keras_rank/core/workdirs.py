"""Work directories: created up front, refused with one line when unwritable."""

import os
import pathlib

from keras_rank.core.errors import ConfigError


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
    path = pathlib.Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"{argument} '{folder}' is not a writable folder: "
            f"{error.strerror or error}."
        ) from error
    return path
