#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Bursts of interleaved packets of several flows to one address, for
# nft_divert_batch.sh: sent back to back, so that a qdisc that holds them
# (netem) releases them together and the receiver gets them in one batch.
#
#   batch_burst.py udp ADDR N PORT...
#       N rounds of one datagram to each PORT in turn, each from a socket of
#       its own (a flow of its own), all without waiting; print "sent=K"
#   batch_burst.py tcp ADDR N PORT:TAG...
#       N connections to each PORT, opened in turn and all at once, then
#       three rounds of one line on every connection in turn; a connection
#       is good when every line was answered by the endpoint tagged TAG.
#       Print "PORT good=K/N" per port, and exit 0 only if all were good.

import selectors
import socket
import sys
import time

TIMEOUT = 20


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def udp(addr, n, ports):
    socks = []
    for _ in range(n):
        for port in ports:
            s = socket.socket(family(addr), socket.SOCK_DGRAM)
            s.bind(("", 0))
            socks.append((s, port))
    sent = 0
    for s, port in socks:
        s.sendto(b"x\n", (addr, port))
        sent += 1
    print(f"sent={sent}")
    # The sockets stay open until the datagrams left the qdisc.
    time.sleep(1)
    return 0


class Conn:
    def __init__(self, addr, port, tag):
        self.port, self.tag = port, tag
        self.buf = b""
        self.answers = 0
        self.wrong = False
        self.dead = False
        self.s = socket.socket(family(addr), socket.SOCK_STREAM)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.setblocking(False)
        self.s.connect_ex((addr, port))


def wait_all(sel, conns, want, deadline):
    """Until every live connection has WANT answers, or the deadline."""
    while time.monotonic() < deadline:
        if all(c.dead or c.answers >= want for c in conns):
            return
        for key, _ in sel.select(0.2):
            c = key.data
            try:
                data = c.s.recv(4096)
            except OSError:
                data = b""
            if not data:
                c.dead = True
                sel.unregister(c.s)
                continue
            c.buf += data
            while b"\n" in c.buf:
                line, c.buf = c.buf.split(b"\n", 1)
                c.answers += 1
                if not line.decode(errors="replace").startswith(c.tag + " "):
                    c.wrong = True


def tcp(addr, n, specs):
    deadline = time.monotonic() + TIMEOUT
    conns = []
    for _ in range(n):
        for spec in specs:
            port, tag = spec.split(":", 1)
            conns.append(Conn(addr, int(port), tag))
    sel = selectors.DefaultSelector()
    # Connected: writable, or failed.
    pending = {c.s: c for c in conns}
    for c in conns:
        sel.register(c.s, selectors.EVENT_WRITE, c)
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            c = key.data
            if c.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                c.dead = True
            sel.unregister(c.s)
            del pending[c.s]
    for c in pending.values():
        c.dead = True
        sel.unregister(c.s)
    for c in conns:
        if not c.dead:
            sel.register(c.s, selectors.EVENT_READ, c)
    for rnd in range(1, 4):
        for c in conns:
            if c.dead:
                continue
            try:
                c.s.send(b"line%d\n" % rnd)
            except OSError:
                c.dead = True
                sel.unregister(c.s)
        wait_all(sel, conns, rnd, deadline)
    ok = True
    for spec in specs:
        port = int(spec.split(":", 1)[0])
        mine = [c for c in conns if c.port == port]
        good = sum(1 for c in mine
                   if not c.dead and not c.wrong and c.answers >= 3)
        print(f"{port} good={good}/{len(mine)}")
        ok &= good == len(mine)
    return 0 if ok else 1


def main(argv):
    if len(argv) < 5 or argv[1] not in ("udp", "tcp"):
        sys.stderr.write(__doc__ if __doc__ else "usage: see the header\n")
        return 2
    if argv[1] == "udp":
        return udp(argv[2], int(argv[3]), [int(p) for p in argv[4:]])
    return tcp(argv[2], int(argv[3]), argv[4:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
