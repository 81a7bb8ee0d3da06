"""Prints its arguments to stdout, one line to stderr, exits with the code in $EXIT_CODE."""

import os
import sys

for arg in sys.argv[1:]:
    print(f"arg: {arg}")
print("to stderr", file=sys.stderr)
sys.stdout.buffer.write(b"bad byte: \xff end\n")
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
