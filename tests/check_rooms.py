#!/usr/bin/env python3
"""check_rooms.py - the layout the docs describe is the layout of the tree
(room: tests).

docs/design.md's rooms table names, for each room, its files (paths, with
[ch] for a .c/.h pair, or a folder/ for every source file under it).  This
checks that:
  - every source file (*.c, *.h) tracked in the tree is in exactly one room;
  - every path the table names exists;
  - every source file's header comment names its room, "(room: NAME)",
    as the table does;
  - every top-level folder holding files is in the README's layout table.
Exit 0, or 1 after listing every disagreement.
"""
import os
import re
import subprocess
import sys

top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..')
os.chdir(top)


def tracked():
    try:
        out = subprocess.run(['git', 'ls-files'], capture_output=True,
                             text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.')
               for f in fs if not d.startswith(('./build', './.git'))]
    return sorted(f for f in out if os.path.exists(f))


def rooms_table(text):
    rows = {}
    m = re.search(r'^\| room \| files \| concern \|\n\|[-|]+\|\n((?:\|.*\n)+)',
                  text, re.M)
    if not m:
        sys.exit('check_rooms: no rooms table in docs/design.md')
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = re.findall(r'`([^`]+)`', cells[1])
    return rows


def expand(pat, files):
    if pat.endswith('/'):
        return [f for f in files if f.startswith(pat)]
    if pat.endswith('.[ch]'):
        base = pat[:-len('.[ch]')]
        return [f for f in files if f in (base + '.c', base + '.h')]
    return [f for f in files if f == pat]


def main():
    files = tracked()
    sources = [f for f in files if f.endswith(('.c', '.h'))]
    rows = rooms_table(open('docs/design.md').read())
    bad = []
    room_of = {}
    for room, pats in rows.items():
        for pat in pats:
            hit = expand(pat, sources)
            if not hit:
                bad.append('design.md: room %r names %s, which holds no '
                           'source file' % (room, pat))
            for f in hit:
                if f in room_of and room_of[f] != room:
                    bad.append('%s is in two rooms: %s and %s'
                               % (f, room_of[f], room))
                room_of[f] = room
    for f in sources:
        if f not in room_of:
            bad.append('%s is in no room of design.md' % f)
            continue
        head = open(f, errors='replace').read(600)
        head = ' '.join(re.sub(r'^\s*\*', ' ', head, flags=re.M).split())
        m = re.search(r'\(room: ([^)]+)\)', head)
        if not m:
            bad.append('%s: its header names no room (want "(room: %s)")'
                       % (f, room_of[f]))
        elif m.group(1) != room_of[f]:
            bad.append('%s: its header says room %r, design.md says %r'
                       % (f, m.group(1), room_of[f]))
    readme = open('README.md').read()
    layout = set(re.findall(r'^\| `([^`/]+)/`', readme, re.M))
    layout |= set(re.findall(r'^\| `([^`/]+)/[^`]+`', readme, re.M))
    tops = {f.split('/')[0] for f in files if '/' in f
            and not f.startswith('.')}
    for t in sorted(tops - layout):
        bad.append('README.md: the layout table lacks %s/' % t)
    for line in bad:
        print('check_rooms: ' + line)
    print('check_rooms: %d source files in %d rooms, %d disagreements'
          % (len(sources), len(rows), len(bad)))
    return 1 if bad else 0


sys.exit(main())
