#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Many TCP connections at once, for nft_relay_load.sh.
#
#   conn_flood.py serve PORT        answer each line with "got <line>",
#                                   any number of connections (dual-stack)
#   conn_flood.py flood ADDR PORT N open N connections, all of them before
#                                   any talks, then send a line on each and
#                                   read its answer; print "ok=K failed=F"
#                                   and exit 0 only if all N were answered

import asyncio
import sys


async def serve(port):
    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(b"got " + line)
                await writer.drain()
        except OSError:
            pass
        writer.close()

    # No host: one socket per family (asyncio makes IPv6 sockets v6-only).
    server = await asyncio.start_server(handle, port=port,
                                        backlog=4096)
    async with server:
        await server.serve_forever()


async def flood(addr, port, n):
    async def connect():
        try:
            return await asyncio.wait_for(asyncio.open_connection(addr, port),
                                          120)
        except (OSError, asyncio.TimeoutError):
            return None

    async def talk(conn, i):
        if conn is None:
            return False
        reader, writer = conn
        try:
            writer.write(b"conn %d\n" % i)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 120)
            writer.close()
            await writer.wait_closed()
            return line == b"got conn %d\n" % i
        except (OSError, asyncio.TimeoutError):
            return False

    conns = await asyncio.gather(*(connect() for _ in range(n)))
    results = await asyncio.gather(*(talk(c, i) for i, c in enumerate(conns)))
    ok = sum(results)
    print("ok=%d failed=%d" % (ok, n - ok))
    return ok == n


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        sys.exit(0 if asyncio.run(flood(sys.argv[2], int(sys.argv[3]),
                                        int(sys.argv[4]))) else 1)
