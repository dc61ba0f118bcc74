#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Established TCP flows for make bench's scale workload.
#
#   bench_flows.py serve PORT              transparent listener on PORT (any
#                                          address, dual-stack) that accepts
#                                          and keeps every connection
#   bench_flows.py hold ADDR PORT N FILE   open N connections to ADDR:PORT,
#                                          one after the other, then write
#                                          "ok N" (or "failed K of N: why")
#                                          to FILE and keep them open until
#                                          killed

import resource
import socket
import sys
import time

IP_TRANSPARENT = 19


def more_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))


def serve(port):
    more_files()
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(16384)
    held = []
    while True:
        conn, _ = s.accept()
        held.append(conn)


def hold(addr, port, n, path):
    more_files()
    held = []
    status = f"ok {n}"
    for i in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(30)
        try:
            c.connect((addr, port))
        except OSError as e:
            status = f"failed {n - i} of {n}: {e}"
            break
        held.append(c)
    with open(path, "w") as f:
        f.write(status + "\n")
    while True:
        time.sleep(3600)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 6 and sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.stderr.write(__doc__ if __doc__ else "usage: see the header\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
