#!/usr/bin/env python3
"""strace_counts.py - the calls column of `strace -c` summaries, as one
JSON line for bench/report.py.

    strace_counts.py NAME CLIENT_SUMMARY SERVER_SUMMARY

prints {"case": "syscalls-NAME", "rep": 1, "result": {"client": {...},
"server": {...}}}, each side mapping syscall name to calls (a side whose
file is missing or empty maps to {}).
"""
import json
import sys


def counts(path):
    out = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            try:
                out[f[-1]] = int(f[3])
            except ValueError:
                pass
    return out


def main():
    name, client, server = sys.argv[1:4]
    print(json.dumps({"case": "syscalls-" + name, "rep": 1,
                      "result": {"client": counts(client),
                                 "server": counts(server)}}))


if __name__ == "__main__":
    main()
