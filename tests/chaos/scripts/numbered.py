"""Print COUNT numbered lines as fast as the pipe takes them (chaos case 5's job)."""

import sys

count = int(sys.argv[1])
out = sys.stdout
for i in range(count):
    out.write(f"line {i:07d} of a job that fills the worker's disk .........................\n")
out.flush()
