r"""The Python `websockets` peer of tests/real_peers.rs and tests/compression_peers.rs.

    peer.py server --expect BYTES [--port 0] [--report-as text|binary]
                   [--ping-interval 1] [--ping-timeout 1] [--deflate] [--timeout 60]
        Serves one connection on 127.0.0.1 (prints "listening PORT" first). Counts and
        SHA-256-hashes every binary byte it receives, frame by frame (nothing is assembled).
        Once at least BYTES have arrived and the message in progress has ended, it sends
        "bytes=N sha256=HEX\n" (as a text or binary message), then reads on until the
        connection closes. Keepalive as websockets does it: a ping every --ping-interval
        seconds, the connection failed (1011) when the pong takes longer than --ping-timeout.

    peer.py upload --url URL --size BYTES [--digest-as text|binary] [--deflate]
                   [--timeout 120]
        Connects, sends BYTES of a deterministic pattern with one `await ws.send(data)` (one
        frame), then the hex SHA-256 of those bytes as a text (or binary) message, and reads
        until the server closes.

    peer.py auth-server --token TOKEN [--port 0] [--timeout 60]
        Serves on 127.0.0.1 (prints "listening PORT" first) with a `process_request` hook that
        refuses, with 401, a `WWW-Authenticate: Bearer realm="wsio-test"` and a `Set-Cookie`,
        every upgrade whose `Authorization` is not "Bearer TOKEN" (printing "refused ..."), and
        lets the others through ("accepted"). Echoes every message of an accepted connection
        and exits 0 when it closes with 1000.

    peer.py echo-server [--port 0] [--deflate] [--timeout 60] [--forever]
    peer.py echo-client --url URL [--deflate] [--timeout 60]
        Serves one connection on 127.0.0.1 (prints "listening PORT" first), or connects to
        URL. Prints "extensions VALUE", the Sec-WebSocket-Extensions header of the handshake
        response ("extensions none" without one). Then sends every message back as it came
        (same type, same bytes), except three commands, text messages of their own:
          "wsio-peer: digest"  the next message is hashed as it arrives, frame by frame
                               (nothing is assembled) and answered with the text message
                               "bytes=N sha256=HEX";
          "wsio-peer: send N"  sends N bytes of JSON lines (compressible) as one binary
                               message, then "bytes=N sha256=HEX" of them as text;
          "wsio-peer: json"    sends JSON_SAMPLE, encoded by the language's own JSON
                               library, as a text message.
        Exits 0 when the other side closes with 1000.

--deflate turns permessage-deflate on, with websockets' default settings (`compression=
"deflate"`: a server asks for 12-bit windows both ways, memory level 5); without it, and in
every mode but auth-server, compression is off.

Every step is printed on stdout, one line each. Exits 0 when the run went as described, 1
otherwise, 2 on --timeout.
"""

import argparse
import asyncio
import hashlib
import json
from http import HTTPStatus
import logging
import random
import resource
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

START = time.monotonic()
# The repeating block of the upload pattern: a prime length, so it lines up with no
# power-of-two buffer or frame size and a misplaced chunk changes the digest.
BLOCK = 1_000_003
# The prefix of the commands of the echo modes.
COMMAND = "wsio-peer: "
# What the "json" command sends (tests/typed_messages.rs expects the same value).
JSON_SAMPLE = {
    "from": "peer",
    "text": "h\u00e9llo \u2713 \U0001f980 \"quoted\"\n",
    "numbers": [1, -2, 2.5, 1e300],
    "nested": {"ok": True, "nothing": None},
}


def log(*parts):
    print(f"[{time.monotonic() - START:7.3f}s]", *parts, flush=True)


class ProtocolEvents(logging.Formatter):
    """websockets' own debug lines about keepalive and closing (not those of every frame),
    stamped like the rest of the output."""

    @staticmethod
    def wanted(record):
        message = record.getMessage()
        return "keepalive" in message or " CLOSE " in f" {message} "

    def format(self, record):
        return f"[{time.monotonic() - START:7.3f}s] websockets: {record.getMessage()}"


def log_protocol_events():
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ProtocolEvents())
    handler.addFilter(ProtocolEvents.wanted)
    logger = logging.getLogger("websockets")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe_close(ws):
    """What each side said in the closing handshake, as far as it got."""
    sent = ws.protocol.close_sent
    rcvd = ws.protocol.close_rcvd
    fmt = lambda f: "none" if f is None else f"{f.code} {f.reason!r}"
    return f"sent={fmt(sent)} rcvd={fmt(rcvd)}"


def pattern(size, seed=0x5EED):
    block = random.Random(seed).randbytes(BLOCK)
    data = bytearray(size)
    for at in range(0, size, BLOCK):
        n = min(BLOCK, size - at)
        data[at : at + n] = block[:n]
    return data


def compression(args):
    return "deflate" if args.deflate else None


def json_lines(size):
    """`size` bytes of JSON lines, a block of a prime length repeated."""
    lines = b"".join(
        b'{"seq":%d,"user":"peer-%d","score":%d,"tags":["alpha","beta"],"ok":true}\n'
        % (i, i % 97, (i * 7919) % 100_003)
        for i in range(BLOCK // 40)
    )
    block = lines[:BLOCK]
    return (block * (size // BLOCK + 1))[:size]


def extensions_line(ws):
    value = ws.response.headers.get("Sec-WebSocket-Extensions")
    print(f"extensions {value or 'none'}", flush=True)


def report_of(total, digest):
    return f"bytes={total} sha256={digest.hexdigest()}"


# --forever: an echo server for many connections (a load generator's target), which logs no
# message and stays up until it is killed.
QUIET = False


async def echo(ws):
    """Echoes messages and answers the commands until the connection closes; True when the
    other side closed with 1000."""
    if not QUIET:
        extensions_line(ws)
    echoed = 0
    try:
        while True:
            message = await ws.recv()
            if isinstance(message, str) and message.startswith(COMMAND):
                command = message[len(COMMAND):]
                log(f"command {command!r}")
                if command == "digest":
                    digest = hashlib.sha256()
                    total = 0
                    async for fragment in ws.recv_streaming(decode=False):
                        digest.update(fragment)
                        total += len(fragment)
                    log(f"hashed a message: {report_of(total, digest)}")
                    await ws.send(report_of(total, digest))
                elif command == "json":
                    await ws.send(json.dumps(JSON_SAMPLE, ensure_ascii=False))
                elif command.startswith("send "):
                    t = time.monotonic()
                    size = int(command[len("send "):])
                    data = json_lines(size)
                    digest = hashlib.sha256(data)
                    log(f"generated {size} bytes in {time.monotonic() - t:.2f}s")
                    t = time.monotonic()
                    await ws.send(data)
                    log(f"sent them as one message in {time.monotonic() - t:.2f}s")
                    del data
                    await ws.send(report_of(size, digest))
                else:
                    log("unknown command")
                    await ws.close(1003, "unknown command")
                continue
            await ws.send(message)
            echoed += 1
            if QUIET:
                continue
            if isinstance(message, str):
                log(f"echoed message {echoed}: text, {len(message.encode())} bytes")
            else:
                log(f"echoed message {echoed}: binary, {len(message)} bytes")
    except ConnectionClosed as e:
        if not QUIET:
            log(f"connection closed: {describe_close(ws)} ({e})")
    rcvd = ws.protocol.close_rcvd
    return rcvd is not None and rcvd.code == 1000


async def run_echo_server(args):
    global QUIET
    QUIET = args.forever
    done = asyncio.get_running_loop().create_future()

    async def handler(ws):
        if QUIET:
            await echo(ws)
            return
        log("connected from", ws.remote_address)
        ok = await echo(ws)
        if not done.done():
            done.set_result(ok)

    async with serve(
        handler, "127.0.0.1", args.port, compression=compression(args), max_size=None
    ) as server:
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        ok = await done
    log(f"exit ok={ok} peak_rss={peak_rss_mib():.0f} MiB")
    return 0 if ok else 1


async def run_echo_client(args):
    async with connect(args.url, compression=compression(args), max_size=None) as ws:
        log("connected")
        ok = await echo(ws)
    log(f"exit ok={ok} peak_rss={peak_rss_mib():.0f} MiB")
    return 0 if ok else 1


async def run_server(args):
    done = asyncio.get_running_loop().create_future()
    ok = False

    async def handler(ws):
        nonlocal ok
        log("connected from", ws.remote_address)
        digest = hashlib.sha256()
        total = 0
        reported = False
        try:
            while True:
                binary = True
                async for fragment in ws.recv_streaming():
                    if isinstance(fragment, str):
                        binary = False
                        log(f"text fragment {fragment[:80]!r}")
                        continue
                    digest.update(fragment)
                    total += len(fragment)
                if binary and total >= args.expect and not reported:
                    report = f"bytes={total} sha256={digest.hexdigest()}"
                    log("received everything; sending report:", report)
                    await ws.send(report + "\n", text=args.report_as == "text")
                    reported = True
                    ok = total == args.expect
        except ConnectionClosed as e:
            log(f"connection closed: {describe_close(ws)} ({e})")
        log(f"received bytes={total} sha256={digest.hexdigest()} reported={reported}")
        if not done.done():
            done.set_result(None)

    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        compression=compression(args),
        max_size=None,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        log(f"websockets server, ping_interval={args.ping_interval} "
            f"ping_timeout={args.ping_timeout}")
        print(f"listening {port}", flush=True)
        await done
    log(f"exit ok={ok} peak_rss={peak_rss_mib():.0f} MiB")
    return 0 if ok else 1


async def run_upload(args):
    t = time.monotonic()
    data = pattern(args.size)
    hexdigest = hashlib.sha256(data).hexdigest()
    log(f"generated {args.size} bytes in {time.monotonic() - t:.2f}s, sha256={hexdigest}")
    ok = False
    async with connect(args.url, compression=compression(args), max_size=None) as ws:
        log("connected")
        try:
            t = time.monotonic()
            await ws.send(data)
            log(f"sent {args.size} bytes as one frame in {time.monotonic() - t:.2f}s")
            del data
            if args.digest_as == "text":
                await ws.send(hexdigest)
            else:
                await ws.send(hexdigest.encode())
            log(f"sent the digest as {args.digest_as}")
            async for message in ws:
                log(f"received {message[:200]!r}")
        except ConnectionClosed as e:
            log(f"connection closed: {describe_close(ws)} ({e})")
        else:
            log(f"connection closed: {describe_close(ws)}")
        rcvd = ws.protocol.close_rcvd
        ok = rcvd is not None and rcvd.code == 1000
    log(f"exit ok={ok} peak_rss={peak_rss_mib():.0f} MiB")
    return 0 if ok else 1


async def run_auth_server(args):
    done = asyncio.get_running_loop().create_future()

    def check(connection, request):
        given = request.headers.get("Authorization")
        if given == f"Bearer {args.token}":
            log("accepted")
            return None
        log(f"refused authorization={given!r}")
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "a bearer token is required\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="wsio-test"'
        response.headers["Set-Cookie"] = "challenge=1; Path=/"
        return response

    async def handler(ws):
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        log(f"connection closed: {describe_close(ws)}")
        rcvd = ws.protocol.close_rcvd
        if not done.done():
            done.set_result(rcvd is not None and rcvd.code == 1000)

    async with serve(handler, "127.0.0.1", args.port, process_request=check) as server:
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        ok = await done
    log(f"exit ok={ok}")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--expect", type=int, required=True)
    s.add_argument("--report-as", choices=["text", "binary"], default="text")
    s.add_argument("--ping-interval", type=float, default=1.0)
    s.add_argument("--ping-timeout", type=float, default=1.0)
    s.add_argument("--deflate", action="store_true")
    s.add_argument("--timeout", type=float, default=60.0)
    u = sub.add_parser("upload")
    u.add_argument("--url", required=True)
    u.add_argument("--size", type=int, required=True)
    u.add_argument("--digest-as", choices=["text", "binary"], default="text")
    u.add_argument("--deflate", action="store_true")
    u.add_argument("--timeout", type=float, default=120.0)
    a = sub.add_parser("auth-server")
    a.add_argument("--port", type=int, default=0)
    a.add_argument("--token", required=True)
    a.add_argument("--timeout", type=float, default=60.0)
    es = sub.add_parser("echo-server")
    es.add_argument("--port", type=int, default=0)
    es.add_argument("--deflate", action="store_true")
    es.add_argument("--timeout", type=float, default=60.0)
    es.add_argument("--forever", action="store_true")
    ec = sub.add_parser("echo-client")
    ec.add_argument("--url", required=True)
    ec.add_argument("--deflate", action="store_true")
    ec.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    run = {
        "server": run_server,
        "upload": run_upload,
        "auth-server": run_auth_server,
        "echo-server": run_echo_server,
        "echo-client": run_echo_client,
    }[args.cmd]
    log_protocol_events()
    try:
        return asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except (asyncio.TimeoutError, TimeoutError):
        log(f"gave up after --timeout {args.timeout}s")
        return 2


if __name__ == "__main__":
    sys.exit(main())
