#!/usr/bin/env python3
"""Times `kvopt serve` under concurrent clients: a benchmark, not a test.

  scripts/serve-bench.py ARTIFACT [--kvopt build/bin/kvopt]
      [--clients 1,4,8] [--requests 16] [--max-tokens 64] [--backend cpu]
      [--prompt-chars N] [--shared-prefix-chars N] [--serve-args "..."]

Starts the server (--max-batch = the largest client count), then for each
client count sends --requests streamed completions from that many clients at
once (greedy, ignore_eos, so every request generates --max-tokens tokens)
and prints the generated tokens per second over the whole run, the median
and worst time to the first token, and the median time between tokens.
Each prompt begins with its request number, so that no two share a prefix.
--prompt-chars makes each prompt that long (its opening, then filler text):
long contexts, where the cache's size decides how many requests fit; the
server's last line counts the preemptions. --shared-prefix-chars puts the
same text of that length before every prompt (a system prompt), which the
server prefills once and shares; --serve-args passes more options to
`kvopt serve` (e.g. --serve-args=--no-prefix-sharing for the comparison).
"""
import argparse
import http.client
import json
import re
import shlex
import signal
import statistics
import subprocess
import threading
import time

PROMPTS = ["Once upon a time", "The weather today", "In a small village",
           "The history of science", "My favourite recipe", "A long journey",
           "The old lighthouse", "Numbers and letters"]


def stream_one(port, prompt, max_tokens):
    """(seconds to the first token, seconds between later tokens, tokens)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/v1/completions", body,
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    arrivals, tokens = [], 0
    for line in response:
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: "):])
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        elif event["choices"] and event["choices"][0]["text"]:
            arrivals.append(time.perf_counter())
    connection.close()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return arrivals[0] - start, gaps, tokens


def run(port, clients, requests, max_tokens, prompt_of):
    queue = list(range(requests))
    lock = threading.Lock()
    results = []

    def client():
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            result = stream_one(port, prompt_of(i), max_tokens)
            with lock:
                results.append(result)
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    first = sorted(r[0] for r in results)
    gaps = [g for r in results for g in r[1]]
    tokens = sum(r[2] for r in results)
    print("%7d %9d %14.1f %13.0f %12.0f %15.1f" % (
        clients, requests, tokens / seconds, 1000 * statistics.median(first),
        1000 * first[-1], 1000 * statistics.median(gaps) if gaps else 0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("--kvopt", default="build/bin/kvopt")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--prompt-chars", type=int, default=0)
    parser.add_argument("--shared-prefix-chars", type=int, default=0)
    parser.add_argument("--serve-args", default="")
    args = parser.parse_args()
    filler = " The quick brown fox jumps over the lazy dog, again and again."
    system = ("You are a careful assistant. Answer briefly." +
              filler * (args.shared_prefix_chars // len(filler) + 1)
              )[:args.shared_prefix_chars]

    def prompt_of(i):
        # Its number first: no two requests begin alike, so none shares
        # another's cache pages but for the common text.
        text = "%d. %s" % (i, PROMPTS[i % len(PROMPTS)])
        if args.prompt_chars:
            text += filler * (args.prompt_chars // len(filler) + 1)
            text = text[:args.prompt_chars]
        return system + text
    clients = [int(c) for c in args.clients.split(",")]
    server = subprocess.Popen(
        [args.kvopt, "serve", args.artifact, "--port", "0", "--backend",
         args.backend, "--max-batch", str(max(clients))] +
        shlex.split(args.serve_args),
        stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    port = int(re.search(r":(\d+)$", line.strip()).group(1))
    print(line.strip())
    print("clients  requests  tokens/s (all)  TTFT p50 ms  TTFT max ms  "
          "inter-token ms")
    try:
        for count in clients:
            run(port, count, args.requests, args.max_tokens, prompt_of)
    finally:
        server.send_signal(signal.SIGTERM)
        print(server.communicate(timeout=60)[1].strip().splitlines()[-1])


if __name__ == "__main__":
    main()
