"""Prints N numbered lines (argv[1]), then exits 0."""

import sys

out = sys.stdout
for i in range(1, int(sys.argv[1]) + 1):
    out.write(f"line {i}\n")
