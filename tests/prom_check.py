#!/usr/bin/env python3
"""prom_check.py - the Prometheus text format, checked; and dsm-server's
metrics endpoint, scraped and provoked (room: tests).  For
tests/test_metrics.sh.

  prom_check.py check FILE              the exposition grammar (below);
                                        exit 1 listing every fault
  prom_check.py scrape HOST:PORT        GET /metrics: 200 with the format's
                                        content type, the body on stdout
  prom_check.py value FILE NAME [L=V...]  the value of the one sample of
                                        NAME with those labels (and maybe
                                        more), or the sum over all that
                                        match with --sum
  prom_check.py timed FILE              dsm-server's: every request
                                        counted is timed, type by type
  prom_check.py hostile HOST:PORT PID CAP TIMEOUT_MS [IN OUT]
                                        404, 405, 400s, slow peers closed,
                                        the cap of connections; with IN
                                        and OUT, metrics_load's stdin
                                        (a FIFO) and stdout: a round of
                                        its completes while the cap is
                                        reached, the server serving on

What `check` holds a text to (version 0.0.4, and our conventions):
  - every line is a comment or a sample; "# HELP" and "# TYPE" once per
    family, both before its first sample;
  - metric and label names match the format's grammar; label values are
    quoted with the format's escapes only; no label set repeats a name;
  - a family's samples are contiguous, no series appears twice, and no
    sample has a timestamp (node_exporter's textfile collector refuses
    them);
  - counters end in _total and are not negative; a histogram's samples
    are NAME_bucket (with le), NAME_sum and NAME_count; per label set its
    buckets are cumulative in increasing le, +Inf is there and equals
    _count.
"""
import http.client
import math
import os
import re
import socket
import sys
import time

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*$')
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


class Fault(Exception):
    pass


def parse_labels(text, pos):
    """The label set starting at text[pos] == '{': (dict, end)."""
    labels = {}
    pos += 1
    while True:
        if text[pos:pos + 1] == '}':
            return labels, pos + 1
        m = re.compile(r'([^=\s]*)="').match(text, pos)
        if not m or not LABEL.match(m.group(1)):
            raise Fault('bad label name at %r' % text[pos:pos + 20])
        name, pos, value = m.group(1), m.end(), []
        if name in labels:
            raise Fault('label %s twice' % name)
        while True:
            if pos >= len(text):
                raise Fault('unterminated label value')
            ch = text[pos]
            if ch == '"':
                pos += 1
                break
            if ch == '\\':
                esc = text[pos + 1:pos + 2]
                if esc not in ('\\', '"', 'n'):
                    raise Fault('bad escape \\%s in a label value' % esc)
                value.append('\n' if esc == 'n' else esc)
                pos += 2
                continue
            if ch == '\n':
                raise Fault('newline in a label value')
            value.append(ch)
            pos += 1
        labels[name] = ''.join(value)
        if text[pos:pos + 1] == ',':
            pos += 1
        elif text[pos:pos + 1] != '}':
            raise Fault('expected , or } after label %s' % name)


def parse_value(s):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    if not re.match(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$', s):
        raise Fault('bad value %r' % s)
    return float(s)


def parse_sample(line):
    m = re.match(r'[^{\s]+', line)
    if not m or not NAME.match(m.group(0)):
        raise Fault('bad metric name')
    name, pos, labels = m.group(0), m.end(), {}
    if line[pos:pos + 1] == '{':
        labels, pos = parse_labels(line, pos)
    rest = line[pos:].split()
    if not line[pos:pos + 1].isspace() or len(rest) != 1:
        raise Fault('want one value after the labels, no timestamp')
    return name, labels, parse_value(rest[0])


def family_of(name, types):
    """The family a sample name belongs to, given the TYPEs so far."""
    for suffix in ('_bucket', '_sum', '_count'):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ('histogram',
                                                         'summary'):
            return base
    return name


def check_histograms(samples, types):
    """Per histogram and label set: cumulative buckets, +Inf == _count."""
    faults = []
    for fam, kind in types.items():
        if kind != 'histogram':
            continue
        sets = {}
        for (name, labels), v in samples.items():
            d = dict(labels)
            if name == fam + '_bucket':
                le = d.pop('le', None)
                if le is None:
                    faults.append('%s without le' % name)
                    continue
                sets.setdefault(frozenset(d.items()), {}).setdefault(
                    'b', []).append((parse_value(le), v))
            elif name in (fam + '_sum', fam + '_count'):
                sets.setdefault(frozenset(labels), {})[name[len(fam):]] = v
            elif name != fam:
                continue
            else:
                faults.append('%s: a histogram has no plain samples' % fam)
        for key, s in sets.items():
            b = sorted(s.get('b', []))
            where = '%s%s' % (fam, dict(key))
            if not b or b[-1][0] != math.inf:
                faults.append('%s: no +Inf bucket' % where)
                continue
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                faults.append('%s: buckets not cumulative: %s' % (where, b))
            if s.get('_count') != b[-1][1]:
                faults.append('%s: +Inf bucket %s != _count %s'
                              % (where, b[-1][1], s.get('_count')))
            if '_sum' not in s:
                faults.append('%s: no _sum' % where)
    return faults


def parse(text):
    """(samples {(name, frozenset(labels)): value}, types, faults)."""
    helps, types, samples, faults = {}, {}, {}, []
    done, current = set(), None   # families whose samples have ended
    if text and not text.endswith('\n'):
        faults.append('the text does not end with a newline')
    for n, line in enumerate(text.splitlines(), 1):
        try:
            if not line.strip():
                continue
            if line.startswith('#'):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                    name = parts[2]
                    if not NAME.match(name):
                        raise Fault('bad name in %s' % parts[1])
                    seen = helps if parts[1] == 'HELP' else types
                    if name in seen:
                        raise Fault('second %s for %s' % (parts[1], name))
                    if name in done or name == current:
                        raise Fault('%s of %s after its samples'
                                    % (parts[1], name))
                    if parts[1] == 'TYPE':
                        if len(parts) != 4 or parts[3] not in TYPES:
                            raise Fault('bad TYPE line')
                        types[name] = parts[3]
                    else:
                        helps[name] = parts[3] if len(parts) > 3 else ''
                continue
            name, labels, value = parse_sample(line)
            fam = family_of(name, types)
            if fam != current:
                if fam in done:
                    raise Fault('samples of %s are not together' % fam)
                if current:
                    done.add(current)
                current = fam
            if fam not in types or fam not in helps:
                raise Fault('%s has no HELP and TYPE before it' % fam)
            key = (name, frozenset(labels.items()))
            if key in samples:
                raise Fault('series %s%s twice' % (name, labels))
            samples[key] = value
            if types[fam] == 'counter':
                if not name.endswith('_total'):
                    raise Fault('counter %s does not end in _total' % name)
                if not value >= 0:
                    raise Fault('counter %s is %s' % (name, value))
        except Fault as e:
            faults.append('line %d: %s: %r' % (n, e, line))
    faults += check_histograms(samples, types)
    return samples, types, faults


def value(samples, name, want, total=False):
    hits = [v for (n, labels), v in samples.items()
            if n == name and want.items() <= dict(labels).items()]
    if total:
        return sum(hits)
    if len(hits) != 1:
        raise SystemExit('%d samples of %s%s' % (len(hits), name, want))
    return hits[0]


# ---- talking to the endpoint ------------------------------------------------

def split_addr(addr):
    host, port = addr.rsplit(':', 1)
    return host, int(port)


def scrape(addr, path='/metrics', method='GET'):
    host, port = split_addr(addr)
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, dict(r.getheaders()), body


def raw(addr, data, wait=3.0):
    """Send data, then read until the server closes: (bytes, how it
    ended: 'eof', 'reset' or 'open' if it did not within wait)."""
    s = socket.create_connection(split_addr(addr), timeout=wait)
    got = b''
    try:
        if data:
            s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got, 'eof'
            got += chunk
    except ConnectionResetError:
        return got, 'reset'
    except socket.timeout:
        return got, 'open'
    finally:
        s.close()


def status_of(reply):
    m = re.match(rb'HTTP/1\.1 (\d{3}) ', reply)
    return int(m.group(1)) if m else None


def fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def rss_kib(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


def settle(pid, most, bound=3.0):
    """Wait (at most bound seconds) until pid holds at most `most`
    descriptors: until the server has closed the connections we closed."""
    deadline = time.monotonic() + bound
    while fds(pid) > most and time.monotonic() < deadline:
        time.sleep(0.01)


def refused_total(addr, pid):
    # A scrape the server has not yet closed still counts against its cap,
    # and the connections opened next would meet a cap one lower than they
    # expect.  Its EOF is not enough: the server sends its FIN (shutdown)
    # when the answer is out, but closes only once it reads ours, and it
    # may take new connections before it does.  So wait for its descriptor
    # to go as well.
    before = fds(pid)
    got, end = raw(addr, b'GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n',
                   wait=10.0)
    if end != 'eof' or status_of(got) != 200:
        raise SystemExit('FAIL: scrape for the refused count: %s, %r'
                         % (end, got[:60]))
    settle(pid, before)
    samples, _, _ = parse(got.split(b'\r\n\r\n', 1)[1].decode())
    return value(samples, 'dsm_server_metrics_connections_refused_total', {})


def hostile(addr, pid, cap, timeout_ms, load=None):
    faults = []

    def expect(cond, what):
        if not cond:
            faults.append(what)
            print('FAIL: ' + what)
        else:
            print('ok: ' + what.split(':')[0])

    st, hdr, body = scrape(addr, '/nothing')
    expect(st == 404, '404 for /nothing: got %s' % st)
    st, hdr, body = scrape(addr, '/metrics', 'POST')
    expect(st == 405 and 'GET' in hdr.get('Allow', ''),
           '405 with Allow for POST: got %s %s' % (st, hdr))
    st, hdr, body = scrape(addr, '/metrics', 'HEAD')
    expect(st == 200 and body == '' and int(hdr['Content-Length']) > 0,
           'HEAD /metrics: 200, no body: got %s %r' % (st, body[:40]))
    st, hdr, body = scrape(addr, '/metrics?x=1')
    expect(st == 200, 'a query is ignored: got %s' % st)
    for req, what in ((b'GARBAGE\r\n\r\n', 'no target or version'),
                      (b'GET /metrics HTTP/2.0\r\n\r\n', 'HTTP/2.0'),
                      (b'GET  /metrics HTTP/1.1\r\n\r\n', 'two spaces'),
                      (b'GET /metrics\xff HTTP/1.1\r\n\r\n', 'a byte > 0x7f')):
        got, end = raw(addr, req)
        expect(status_of(got) == 400 and end == 'eof',
               '400 and closed for %s: got %r, %s' % (what, got[:40], end))
    # an oversized header: never ended, more than the server may buffer
    start = time.monotonic()
    got, end = raw(addr, b'GET /metrics HTTP/1.1\r\nX-Long: ' + b'a' * 9000)
    took = time.monotonic() - start
    expect(end != 'open' and status_of(got) in (400, None) and
           took < timeout_ms / 1000.0 * 0.8,
           'an oversized header is refused (400, closed) at once: got %r, '
           '%s after %.2f s' % (got[:40], end, took))
    expect(status_of(got) == 400,
           'the oversized header\'s 400 reaches the peer: got %r' % got[:40])

    # A slow peer, sending half a request, then nothing; and a silent one.
    for what, data in (('half a request', b'GET /metr'), ('nothing', b'')):
        start = time.monotonic()
        got, end = raw(addr, data, wait=timeout_ms / 1000.0 * 4)
        took = time.monotonic() - start
        expect(end in ('eof', 'reset') and got == b'' and
               timeout_ms / 1000.0 * 0.8 <= took <= timeout_ms / 1000.0 * 3,
               'a peer sending %s is closed after the timeout (%d ms): %s '
               'after %.2f s' % (what, timeout_ms, end, took))

    # More connections than the cap: the cap's worth stay open, idle; the
    # rest are closed at once, unanswered; descriptors and memory stay
    # bounded; the server serves its clients meanwhile; once the idle ones
    # are gone the endpoint serves again.
    before_refused = refused_total(addr, pid)
    fd0, rss0 = fds(pid), rss_kib(pid)
    extra = 8 * cap
    held = [socket.create_connection(split_addr(addr)) for _ in range(cap)]
    time.sleep(0.3)  # all accepted
    more, connected = [], []
    for _ in range(extra):
        more.append(socket.create_connection(split_addr(addr)))
        connected.append(time.monotonic())
    time.sleep(0.1)  # the server at work on them: over the cap if it kept them
    fd1, rss1 = fds(pid), rss_kib(pid)
    # "At once": each closed well before the timeout would close it anyway
    # (the refused counter, checked below, says it was the cap that closed
    # them), counted from its own connect: a connect the kernel retried
    # (a dropped SYN waits a second, then two more) is not the server's.
    limit = timeout_ms / 1000.0 * 0.75
    closed = closed_when(more, connected[-1] + timeout_ms / 1000.0 * 1.5)
    took = [closed[i] - connected[i] if closed[i] is not None else None
            for i in range(extra)]
    late = [(i, t) for i, t in enumerate(took) if t is None or t >= limit]
    done = [t for t in took if t is not None]
    print('info: %d connections past the cap closed, at most %.3f s after '
          'their connect; the connects took %.3f s in all'
          % (len(done), max(done, default=0), connected[-1] - connected[0]))
    expect(not late,
           'connections past the cap of %d are closed at once (within '
           '%.1f s of their connect): %d of %d; late: %s'
           % (cap, limit, extra - len(late), extra,
              ', '.join('#%d %s' % (i, 'never' if t is None else
                                     '%.2f s' % t) for i, t in late[:8])))
    expect(fd1 - fd0 <= cap,
           'descriptors stay bounded: %d more with %d connections open'
           % (fd1 - fd0, cap + extra))
    expect(rss1 - rss0 < 4096,
           'memory stays bounded: RSS grew %d KiB' % (rss1 - rss0))
    if load:
        expect(client_round(*load),
               'a client\'s round completes while the endpoint is full')
    for s in held + more:
        s.close()
    settle(pid, fd0)  # the server has closed them all
    after = refused_total(addr, pid)
    expect(after - before_refused == extra,
           'dsm_server_metrics_connections_refused_total moved by %d, '
           'want %d' % (after - before_refused, extra))
    return 1 if faults else 0


def closed_when(socks, deadline):
    """When (monotonic) the server closed each of socks, or None for
    those still open at deadline."""
    when = [None] * len(socks)
    for s in socks:
        s.setblocking(False)
    while None in when and time.monotonic() < deadline:
        now = time.monotonic()
        for i, s in enumerate(socks):
            if when[i] is not None:
                continue
            try:
                if s.recv(1) == b'':  # an answer would not be a refusal
                    when[i] = now
            except ConnectionResetError:
                when[i] = now
            except BlockingIOError:
                pass
        time.sleep(0.02)
    return when


def client_round(fifo, out, wait=60):
    """Ask metrics_load for one more round; whether it printed it."""
    lines = len(open(out).read().splitlines())
    with open(fifo, 'w') as f:
        f.write('round\n')
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if len(open(out).read().splitlines()) > lines:
            return True
        time.sleep(0.05)
    return False


def timed(samples):
    """Every request counted in dsm_server_requests_total is timed once
    in dsm_server_request_duration_seconds: faults."""
    faults, by_type = [], {}
    for (name, labels), v in samples.items():
        if name == 'dsm_server_requests_total':
            t = dict(labels)['type']
            by_type[t] = by_type.get(t, 0) + v
    for t, n in sorted(by_type.items()):
        c = value(samples, 'dsm_server_request_duration_seconds_count',
                  {'type': t}, total=True)
        if c != n:
            faults.append('type %s: %d requests, %d timed' % (t, n, c))
    return faults


def main(argv):
    if len(argv) >= 2 and argv[0] == 'check':
        _, _, faults = parse(open(argv[1]).read())
        for f in faults:
            print('exposition: ' + f)
        return 1 if faults else 0
    if len(argv) == 2 and argv[0] == 'scrape':
        st, hdr, body = scrape(argv[1])
        if st != 200 or hdr.get('Content-Type') != CONTENT_TYPE:
            print('scrape %s: %s %s' % (argv[1], st, hdr), file=sys.stderr)
            return 1
        sys.stdout.write(body)
        return 0
    if len(argv) >= 3 and argv[0] == 'value':
        total = '--sum' in argv
        args = [a for a in argv[3:] if a != '--sum']
        samples, _, _ = parse(open(argv[1]).read())
        want = dict(a.split('=', 1) for a in args)
        v = value(samples, argv[2], want, total)
        print(int(v) if v == int(v) else v)
        return 0
    if len(argv) == 2 and argv[0] == 'timed':
        samples, _, faults = parse(open(argv[1]).read())
        faults += timed(samples)
        for f in faults:
            print('timed: ' + f)
        return 1 if faults else 0
    if len(argv) in (5, 7) and argv[0] == 'hostile':
        return hostile(argv[1], int(argv[2]), int(argv[3]), int(argv[4]),
                       argv[5:] or None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
