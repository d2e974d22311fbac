#!/usr/bin/env python3
"""Hostile clients against the shim (test tooling), beside one well-behaved client.

    hostile_clients.py HOST PORT SHIM_PID SECONDS IDLE

While the hostile ones run, the well-behaved client sends GET /healthz every 20 ms on connections
of its own and times each answer. The hostile ones:
  idle        IDLE connections that open and send nothing
  slowloris   50 connections sending a POST /start's head a byte a second
  slow body   one POST /start announcing a 1 GB body, then sending 64 KiB a second
  pipelined   5 connections writing 50 requests at once each, reading every answer
  half-closed 50 connections sending a whole request and shutting down their sending side
At the end it prints one JSON object: the good client's answers and latency percentiles, what each
hostile kind got, and the shim's peak RSS (VmHWM) and CPU time, read from /proc.
"""
import json
import resource
import selectors
import socket
import sys
import threading
import time


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def connect(host, port, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_answers(s, want, deadline):
    """Reads until `want` HTTP answers (heads with a Content-Length body) are in, or EOF/deadline."""
    data = b""
    got = 0
    s.settimeout(1.0)
    while got < want and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = data[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(data) < head_end + 4 + length:
                break
            got += 1
            data = data[head_end + 4 + length:]
    return got


def good_client(host, port, stop, latencies, failures):
    while not stop.is_set():
        start = time.perf_counter()
        try:
            s = connect(host, port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: shim\r\nConnection: close\r\n\r\n")
            if read_answers(s, 1, time.time() + 5) == 1:
                latencies.append((time.perf_counter() - start) * 1000.0)
            else:
                failures.append("no answer")
            s.close()
        except OSError as e:
            failures.append(str(e))
        time.sleep(0.02)


def slowloris(host, port, seconds, result):
    head = b"POST /start HTTP/1.1\r\nHost: shim\r\nContent-Type: application/json\r\nContent-Length: 40\r\n"
    socks = []
    for _ in range(50):
        try:
            socks.append(connect(host, port))
        except OSError:
            pass
    closed_by_server = 0
    end = time.time() + seconds
    i = 0
    while socks and time.time() < end and i < len(head):
        for s in list(socks):
            try:
                s.sendall(head[i:i + 1])
            except OSError:
                closed_by_server += 1
                socks.remove(s)
        i += 1
        time.sleep(1.0)
    for s in socks:
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                closed_by_server += 1
        except OSError:
            closed_by_server += 1
        s.close()
    result["slowloris_closed_by_server"] = closed_by_server


def slow_body(host, port, seconds, result):
    s = connect(host, port)
    s.sendall(b"POST /start HTTP/1.1\r\nHost: shim\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000000000\r\n\r\n")
    sent = 0
    status = ""
    end = time.time() + seconds
    s.settimeout(0.05)
    chunk = b"x" * 65536
    while time.time() < end:
        try:
            s.sendall(chunk)
            sent += len(chunk)
        except OSError:
            break
        try:
            answer = s.recv(4096)
            if answer and not status:
                status = answer.split(b"\r\n", 1)[0].decode("latin-1")
            if not answer:
                break
        except socket.timeout:
            pass
        except OSError:
            break
        time.sleep(1.0)
    s.close()
    result["slow_body_status"] = status
    result["slow_body_sent_bytes"] = sent


def pipelined(host, port, result):
    answered = 0
    for _ in range(5):
        s = connect(host, port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: shim\r\n\r\n" * 50)
        answered += read_answers(s, 50, time.time() + 10)
        s.close()
    result["pipelined_answers"] = answered


def half_closed(host, port, result):
    answered = 0
    for _ in range(50):
        s = connect(host, port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: shim\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        answered += read_answers(s, 1, time.time() + 5)
        s.close()
    result["half_closed_answers"] = answered


def main():
    host, port, pid, seconds, idle_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    raise_fd_limit()
    cpu_before = cpu_seconds(pid)
    result = {}
    idle = []
    sel = selectors.DefaultSelector()
    for _ in range(idle_count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        idle.append(s)
    time.sleep(1.0)
    stop = threading.Event()
    latencies, failures = [], []
    threads = [
        threading.Thread(target=good_client, args=(host, port, stop, latencies, failures)),
        threading.Thread(target=slowloris, args=(host, port, seconds, result)),
        threading.Thread(target=slow_body, args=(host, port, seconds, result)),
        threading.Thread(target=pipelined, args=(host, port, result)),
        threading.Thread(target=half_closed, args=(host, port, result)),
    ]
    for t in threads:
        t.start()
    peak = 0
    end = time.time() + seconds
    while time.time() < end:
        peak = max(peak, proc_status(pid, "VmRSS"))
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    # Idle connections the shim has closed by now (its read deadline).
    closed = 0
    for s in idle:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    sel.close()
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None

    result.update({
        "good_answers": len(latencies), "good_failures": len(failures), "good_failure_sample": failures[:3],
        "good_p50_ms": pct(0.50), "good_p99_ms": pct(0.99), "good_max_ms": round(latencies[-1], 2) if latencies else None,
        "idle_opened": idle_count, "idle_closed_by_server": closed,
        "shim_peak_rss_kb": max(peak, proc_status(pid, "VmHWM")), "shim_cpu_seconds": round(cpu_seconds(pid) - cpu_before, 2),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
