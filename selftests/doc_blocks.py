#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Extract the runnable blocks of the documentation.

A runnable block is a shell code block directly preceded by a marker
comment:

    .. test: SCENARIO[,SCENARIO...] NS [fails]
    .. code-block:: sh

       commands

NS is where the commands run: gw, client or server, the namespaces of the
selftest topology.  "fails" says the text shows an error: the block
must exit non-zero.  A block may belong to several scenarios; each scenario
runs its blocks, in the order of the documents given, in a fresh topology.

Usage: doc_blocks.py OUTDIR FILE.rst...
Writes OUTDIR/NNN.sh, one per block, and prints one line per block:
    NNN SCENARIOS NS EXPECT FILE:LINE
Exits 1 on a malformed marker or a marker not followed by a sh block.
"""

import os
import re
import sys

MARKER = re.compile(r'^\.\. test: (.*)$')
NAME = re.compile(r'^[a-z][a-z0-9-]*$')
PLACES = ('gw', 'client', 'server')


def fail(where, msg):
    print(f'doc_blocks: {where}: {msg}', file=sys.stderr)
    sys.exit(1)


def body(lines, i, where):
    """The dedented body of the literal block starting after line i."""
    while i < len(lines) and lines[i].startswith('   :'):
        i += 1			# directive options
    if i >= len(lines) or lines[i].strip():
        fail(where, 'no blank line after the code-block directive')
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        fail(where, 'empty code block')
    indent = len(lines[i]) - len(lines[i].lstrip(' '))
    if indent == 0:
        fail(where, 'code block not indented')
    out = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip(' ')) < indent:
            break
        out.append(line[indent:] if line.strip() else '')
        i += 1
    while out and not out[-1]:
        out.pop()
    return '\n'.join(out) + '\n'


def main():
    if len(sys.argv) < 3:
        print(__doc__.split('\n\n')[-2], file=sys.stderr)
        sys.exit(2)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for path in sys.argv[2:]:
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        for i, line in enumerate(lines):
            m = MARKER.match(line)
            if not m:
                continue
            where = f'{os.path.basename(path)}:{i + 1}'
            words = m.group(1).split()
            if len(words) not in (2, 3) or \
               (len(words) == 3 and words[2] != 'fails'):
                fail(where, f'marker "{m.group(1)}": want SCENARIOS NS [fails]')
            scenarios = words[0].split(',')
            if not all(NAME.match(s) for s in scenarios):
                fail(where, f'bad scenario name in "{words[0]}"')
            if words[1] not in PLACES:
                fail(where, f'unknown place "{words[1]}" ({", ".join(PLACES)})')
            if i + 1 >= len(lines) or \
               lines[i + 1].strip() != '.. code-block:: sh':
                fail(where, 'the marker must directly precede ".. code-block:: sh"')
            n += 1
            name = f'{n:03d}'
            with open(os.path.join(outdir, name + '.sh'), 'w',
                      encoding='utf-8') as f:
                f.write(body(lines, i + 2, where))
            expect = 'fails' if len(words) == 3 else 'succeeds'
            print(name, ','.join(scenarios), words[1], expect, where)


if __name__ == '__main__':
    main()
