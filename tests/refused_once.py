#!/usr/bin/env python3
"""refused_once.py - a connection refused on its first message is counted
once in dsm_server_connections_refused_total (room: tests).

  refused_once.py DSM_SERVER

A server with --max-handshakes 1.  Each round: a connection announces an
oversized HELLO (refused on its header), and a second connects at once;
the first is read until the server closes it, then both go.  Before the
fix the second's arrival made room by closing the oldest handshake, the
refused one, still listed until its close, and counted it again: 356
and 330 for 300 rounds.  Each round waits 20 ms, so that the second's
close has reached the server before the next round (else the next
arrival would close it to make room, and count it, rightly).  The count
is read from the server's metrics endpoint (prom_check.py's parser).
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom_check  # noqa: E402 (the scrape and the format's parser)

ROUNDS = 300
MAGIC, VERSION, HELLO = 0x314d5344, 3, 1


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def refused(mport):
    status, _, body = prom_check.scrape('127.0.0.1:%d' % mport)
    if status != 200:
        raise SystemExit('FAIL: the metrics scrape answered %d' % status)
    samples, _, _ = prom_check.parse(body)
    return int(prom_check.value(
        samples, 'dsm_server_connections_refused_total', {}))


def main(server):
    tmp = tempfile.mkdtemp(prefix='dsm-refused-')
    port_file = os.path.join(tmp, 'port')
    mport = free_port()
    srv = subprocess.Popen(
        [server, '--listen', '127.0.0.1:0', '--port-file', port_file,
         '--capacity', '16M', '--transport', 'tcp', '--max-handshakes', '1',
         '--metrics', '127.0.0.1:%d' % mport],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        # a header announcing a 1 MiB HELLO: refused on the header alone
        hdr = struct.pack('<IBBHIiQ', MAGIC, VERSION, HELLO, 0, 1 << 20, 0, 0)
        before = refused(mport)
        for _ in range(ROUNDS):
            first = socket.create_connection(('127.0.0.1', port))
            first.sendall(hdr)
            second = socket.create_connection(('127.0.0.1', port))
            first.settimeout(10)
            try:
                while first.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            first.close()
            second.close()
            time.sleep(0.02)
        time.sleep(0.3)
        moved = refused(mport) - before
    finally:
        srv.terminate()
        srv.wait()
    if moved != ROUNDS:
        print('FAIL: %d connections refused, the count moved by %d'
              % (ROUNDS, moved))
        return 1
    print('ok: %d connections refused, counted once each' % ROUNDS)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
