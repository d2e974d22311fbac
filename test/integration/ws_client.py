#!/usr/bin/python3
"""A websocket client for the real-node tests, as the IDE's browser tab would be one: connects to
ws://HOST/ with TCP going to ADDR (the ingress controller's pod), so the Host header picks the
Repl, and sends each request given, then keeps the session open for --hold seconds (an open tab).
Retries the connection until --wait seconds pass (a new Ingress takes a moment to be routed).
Prints one JSON line:
  {"first_byte_ms": ms from --t0 (else its own start) to the first message, "replies": [each reply],
   "error": "..." when it never connected}
Uses Debian's python3-websockets (10.x)."""
import argparse
import asyncio
import json
import time

import websockets


async def session(args, started):
    host, port = args.addr.rsplit(":", 1)
    uri = f"ws://{args.host}:{port}/"
    async with websockets.connect(uri, host=host, port=int(port), open_timeout=3) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 3))
        first = (time.monotonic() - started) * 1000
        replies = [hello]
        for request in args.send:
            await ws.send(request)
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await asyncio.sleep(args.hold)
        return {"first_byte_ms": round(first, 1), "replies": replies}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True, help="IP:PORT the TCP connection goes to")
    parser.add_argument("--host", required=True, help="host name of the URL (the Host header)")
    parser.add_argument("--send", action="append", default=[], help="a JSON request to send")
    parser.add_argument("--wait", type=float, default=0, help="seconds to keep retrying")
    parser.add_argument("--hold", type=float, default=0, help="seconds to keep the session open")
    parser.add_argument("--t0", type=float, help="CLOCK_MONOTONIC seconds the first byte is timed from")
    args = parser.parse_args()
    started = time.monotonic() if args.t0 is None else args.t0
    error = ""
    while True:
        try:
            print(json.dumps(await session(args, started)))
            return
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            error = f"{type(e).__name__}: {e}"
        if time.monotonic() - started > args.wait:
            print(json.dumps({"error": error}))
            return
        await asyncio.sleep(0.05)


asyncio.run(main())
