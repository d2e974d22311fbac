"""A REFERENCE runner for the tests only: it stands in for the platform's own runner image.

Websocket on :3001 (the IDE): sends {"op":"hello","workspace":...} on connect, then answers each
JSON text message: {"op":"list"} -> every file under the workspace (relative, sorted);
{"op":"read","path":P} -> its text; {"op":"write","path":P,"content":C} -> writes it (making
directories). A path that leaves the workspace, an unknown op or bad JSON -> {"error": one line},
and the connection stays open. HTTP on :3000 (the user's app): the workspace's files.
Exits 0 on SIGTERM (it is PID 1). Env: WORKSPACE (/workspace), RUNNER_HOST (0.0.0.0),
RUNNER_WS_PORT (3001), RUNNER_HTTP_PORT (3000). Python 3.11, Debian's websockets 10.4.
"""
import asyncio, functools, http.server, json, os, signal, sys, threading
import websockets

ROOT = os.path.realpath(os.environ.get("WORKSPACE", "/workspace"))
HOST = os.environ.get("RUNNER_HOST", "0.0.0.0")
WS_PORT, HTTP_PORT = int(os.environ.get("RUNNER_WS_PORT", 3001)), int(os.environ.get("RUNNER_HTTP_PORT", 3000))


def inside(path):
    if not isinstance(path, str) or not path or os.path.isabs(path) or ".." in path.split("/"):
        raise ValueError(f"path not inside the workspace: {path!r}")
    real = os.path.realpath(os.path.join(ROOT, path))
    if os.path.commonpath([real, ROOT]) != ROOT or real == ROOT:
        raise ValueError(f"path not inside the workspace: {path!r}")
    return real


def answer(msg):
    req = json.loads(msg)
    op = req.get("op") if isinstance(req, dict) else None
    if op == "list":
        files = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs]
        return {"op": "list", "files": sorted(files)}
    if op == "read":
        with open(inside(req.get("path")), encoding="utf-8") as f:
            return {"op": "read", "path": req["path"], "content": f.read()}
    if op == "write":
        path, content = inside(req.get("path")), req.get("content")
        if not isinstance(content, str):
            raise ValueError("write needs a string content")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        return {"op": "write", "path": req["path"], "ok": True}
    raise ValueError(f"unknown op: {op!r}")


async def ide(websocket, path):
    await websocket.send(json.dumps({"op": "hello", "workspace": ROOT}))
    async for msg in websocket:
        try:
            reply = answer(msg)
        except Exception as e:  # one line back to the client; the connection stays open
            reply = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        await websocket.send(json.dumps(reply))


async def main():
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(0))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
    app = http.server.ThreadingHTTPServer((HOST, HTTP_PORT), handler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    async with websockets.serve(ide, HOST, WS_PORT, close_timeout=1):
        print(f"runner: serving {ROOT} on {HOST}: ws {WS_PORT}, http {HTTP_PORT}", file=sys.stderr, flush=True)
        await stop  # the HTTP thread is a daemon: it ends with the process


if __name__ == "__main__":
    asyncio.run(main())
