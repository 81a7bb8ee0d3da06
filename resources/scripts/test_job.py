"""Sample job: prints to stdout and stderr and exits with the code given as first argument.

test_job.py [EXIT_CODE] [LINES] [DELAY_SECONDS]
"""

import sys
import time


def main(argv: list[str]) -> int:
    code = int(argv[0]) if argv else 0
    lines = int(argv[1]) if len(argv) > 1 else 3
    delay = float(argv[2]) if len(argv) > 2 else 0.2
    print(f"test_job starting (exit code will be {code})", flush=True)
    for i in range(1, lines + 1):
        print(f"line {i} of {lines}", flush=True)
        if delay:
            time.sleep(delay)
    print("test_job: this line goes to stderr", file=sys.stderr, flush=True)
    print("test_job done", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
