"""A guarded main() that decides to run no job (it only prints its usage, as a
script does when called without its arguments). It must still run only once."""

import sys


def main():
    if len(sys.argv) < 2:
        print("usage: guarded_main_no_job.py INPUT", flush=True)
        return


if __name__ == "__main__":
    main()
