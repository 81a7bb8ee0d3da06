"""The environment for programs a frozen (PyInstaller) worker starts.

A one-file worker puts its unpacked folder first on the library search path
(LD_LIBRARY_PATH on Linux, DYLD_LIBRARY_PATH on macOS, LIBPATH on AIX) and keeps the value it
found in ``<NAME>_ORIG``.  A `.sh` job calling curl or psql would then load the worker's bundled
libssl/libcrypto instead of the system's, which breaks as soon as the two differ.  So every
program except the worker itself (the `.py` runner, which needs its bundle) gets the original.
Pure function: tested without processes.
"""

from __future__ import annotations

from collections.abc import Mapping

SEARCH_PATH_VARS = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH")


def for_external_program(environ: Mapping[str, str]) -> dict[str, str]:
    """ENVIRON with each library search path as it was before the bootloader changed it."""
    env = dict(environ)
    for name in SEARCH_PATH_VARS:
        original = env.pop(f"{name}_ORIG", None)
        if original is not None:
            env[name] = original
        else:
            # The bootloader sets NAME without NAME_ORIG when NAME was not set before.
            env.pop(name, None)
    return env
