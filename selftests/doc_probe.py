#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""What a proxy reads from an accepted connection.

Usage: doc_probe.py PORT [transparent]
Listens on 0.0.0.0:PORT (with IP_TRANSPARENT if asked), accepts one TCP
connection and sends it one line, then exits:
    peer=ADDR:PORT sockname=ADDR:PORT origdst=ADDR:PORT|ERRNO-NAME
origdst is the answer of getsockopt(SOL_IP, SO_ORIGINAL_DST).
"""

import errno
import socket
import struct
import sys

IP_TRANSPARENT = 19		# linux/in.h
SO_ORIGINAL_DST = 80		# linux/netfilter_ipv4.h


def fmt(addr):
    return f'{addr[0]}:{addr[1]}'


def main():
    port = int(sys.argv[1])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if len(sys.argv) > 2 and sys.argv[2] == 'transparent':
        lsock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    lsock.bind(('0.0.0.0', port))
    lsock.listen(1)
    print('READY', file=sys.stderr, flush=True)
    conn, peer = lsock.accept()
    try:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        _, dport, daddr = struct.unpack('!HH4s8x', raw)
        orig = f'{socket.inet_ntoa(daddr)}:{dport}'
    except OSError as e:
        orig = errno.errorcode.get(e.errno, str(e.errno))
    line = f'peer={fmt(peer)} sockname={fmt(conn.getsockname())} origdst={orig}\n'
    conn.sendall(line.encode())
    conn.close()


if __name__ == '__main__':
    main()
