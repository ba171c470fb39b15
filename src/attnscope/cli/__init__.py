"""The ``attnscope`` command. Thin: parses arguments, calls the library, prints or writes.

One module per command group (:mod:`.analyze`, :mod:`.models`, :mod:`.serve`, :mod:`.methods`,
:mod:`.heads`, :mod:`.compare`, :mod:`.report`); :mod:`.common` holds the shared options.
Importing this package (and ``attnscope --help``) loads neither torch nor transformers.
"""

from attnscope.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
