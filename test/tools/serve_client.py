"""Drives `kvopt serve` over real sockets for kvopt-serve.test.

Starts the server on a free port, runs one scenario and prints one line per
check for FileCheck; then stops the server with SIGTERM and prints its exit
code and last stderr line.

  serve_client.py KVOPT ARTIFACT tiny   # tinystories: batching, streaming,
                                        # stop strings, errors, hostile HTTP
  serve_client.py KVOPT ARTIFACT chat   # an instruct model's chat endpoint
  serve_client.py KVOPT ARTIFACT auth   # --api-key: /v1/ needs the key
  serve_client.py KVOPT ARTIFACT busy   # --max-connections 1: 503 past it
  serve_client.py KVOPT ARTIFACT preempt  # --cache-tokens 64: preempted
                                          # requests answer as alone
  serve_client.py KVOPT ARTIFACT resume   # a prompt that continues an
                                          # answer reuses its cache
  serve_client.py KVOPT ARTIFACT logprobs # logprobs and echo

KVOPT_BACKEND=cuda runs server and `kvopt run` on the GPU.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

KVOPT, ARTIFACT, SCENARIO = sys.argv[1:4]
# The same scenarios on a GPU: KVOPT_BACKEND=cuda (serve and run alike).
BACKEND = ["--backend", os.environ.get("KVOPT_BACKEND", "cpu")]


def start():
    environment = dict(os.environ)
    if SCENARIO == "auth":
        environment["KVOPT_API_KEY"] = "s3cret"
    extra = {"busy": ["--max-connections", "1"],
             "preempt": ["--cache-tokens", "64"],
             "noshare": ["--no-prefix-sharing"]}.get(SCENARIO, [])
    server = subprocess.Popen(
        [KVOPT, "serve", ARTIFACT, "--port", "0", "--threads", "2",
         "--max-batch", "4", "--model-name", "m"] + BACKEND + extra,
        stderr=subprocess.PIPE, text=True, env=environment)
    line = server.stderr.readline()
    found = re.search(r"on http://127\.0\.0\.1:(\d+)$", line.strip())
    if not found:
        server.kill()
        sys.exit("kvopt serve did not start: " + line)
    return server, int(found.group(1))


SERVER, PORT = start()


def post(path, body, raw=False, headers=None):
    """(status, parsed JSON or text) of one request on its own connection."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    connection.request("POST", path, data,
                       dict({"Content-Type": "application/json"},
                            **(headers or {})))
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, (text if raw else json.loads(text))


def complete(body):
    status, answer = post("/v1/completions", body)
    assert status == 200, answer
    return answer


def stream(path, body):
    """The data of every event of a streamed answer."""
    status, text = post(path, dict(body, stream=True), raw=True)
    assert status == 200, text
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: "):] for e in events]


def raw_exchange(request_bytes):
    """The status line the server answers raw bytes with."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=30) as s:
        s.sendall(request_bytes)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n")[0].decode()


def error(path, body):
    status, answer = post(path, body)
    return "%d %s" % (status, answer["error"]["message"])


def kvopt_run(prompt, tokens, *extra):
    return subprocess.run(
        [KVOPT, "run", ARTIFACT, "--prompt", prompt, "--max-tokens",
         str(tokens), "--ignore-eos", "--threads", "2"] + list(extra) + BACKEND,
        capture_output=True, text=True, check=True).stdout.rstrip("\n")


PROMPTS = ["Once upon a time", "Tom and Sue went", "The cat",
           "One day, a little bird", "Lily liked to", "Max had a big"]


def answered_as_alone(bodies):
    """(how many, of how many) completions sent all at once answer as each
    did alone."""
    alone = [complete(b)["choices"][0]["text"] for b in bodies]
    together = [None] * len(bodies)

    def ask(i):
        together[i] = complete(bodies[i])["choices"][0]["text"]
    threads = [threading.Thread(target=ask, args=(i,))
               for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(a == b for a, b in zip(alone, together)), len(bodies)


def tiny():
    greedy = {"temperature": 0, "ignore_eos": True}
    answer = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=20))
    text = answer["choices"][0]["text"]
    print("completion equals kvopt run:", text == kvopt_run(PROMPTS[0], 20))
    print("finish:", answer["choices"][0]["finish_reason"],
          "usage:", json.dumps(answer["usage"], sort_keys=True))

    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    connection.request("GET", "/metrics")
    metrics = connection.getresponse().read().decode().splitlines()
    connection.close()
    print("metrics:", " ".join(line.split()[-1] for line in metrics if
                               re.match(r"kvopt_(requests_finished_total|"
                                        r"prompt_tokens_total|"
                                        r"decode_tokens_total) ", line)))

    events = stream("/v1/completions",
                    dict(greedy, prompt=PROMPTS[0], max_tokens=20,
                         stream_options={"include_usage": True}))
    chunks = [json.loads(e) for e in events[:-1]]
    streamed = "".join(c["choices"][0]["text"] for c in chunks[:-1])
    print("stream equals the whole answer:", streamed == text)
    print("stream ends:", chunks[-2]["choices"][0]["finish_reason"],
          json.dumps(chunks[-1]["usage"], sort_keys=True), events[-1])

    # Requests at once, more than --max-batch: each gets what it gets alone.
    print("concurrent answers equal to alone: %d of %d" % answered_as_alone(
        [dict(greedy, prompt=p, max_tokens=8 + 3 * i)
         for i, p in enumerate(PROMPTS)]))

    sampled = dict(prompt=PROMPTS[1], max_tokens=16, temperature=0.9, seed=7)
    print("a seed repeats its sample:",
          complete(sampled)["choices"][0]["text"] ==
          complete(sampled)["choices"][0]["text"])

    cut = text.split()[3]
    stopped = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=20,
                            stop=[cut]))["choices"][0]
    print("stop string cuts:", text.startswith(stopped["text"]) and
          cut not in stopped["text"], stopped["finish_reason"])

    ids = complete(dict(greedy, prompt=[1, 80, 147, 201], max_tokens=2))
    print("prompt ids:", ids["usage"]["prompt_tokens"])

    # A client that leaves mid-stream frees its place; the server goes on.
    s = socket.create_connection(("127.0.0.1", PORT))
    body = json.dumps(dict(greedy, prompt=PROMPTS[2], max_tokens=400,
                           stream=True)).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s.recv(100)
    s.close()
    print("after a client left:",
          complete(dict(greedy, prompt=PROMPTS[3], max_tokens=3))
          ["choices"][0]["finish_reason"])

    print(error("/v1/completions", "{\"prompt\": "))
    print(error("/v1/completions", {"prompt": "x", "best_of": 3}))
    print(error("/v1/completions", {"prompt": "x", "model": "other"}))
    print(error("/v1/completions", {"prompt": list(range(1, 601))}))
    print(error("/v1/completions", {"prompt": [1, 99999]}))
    print(error("/v1/chat/completions",
                {"messages": [{"role": "user", "content": "hi"}]}))
    print(error("/v1/embeddings", {}))
    print(error("/health", {}))
    print(raw_exchange(b"GET /health HTTP/1.1\r\n\r\n"))
    print(raw_exchange(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
    print(raw_exchange(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 99999999999\r\n\r\n"))
    print(raw_exchange(b"GET / HTTP/1.1\r\nHost: x\r\n" +
                       b"X-Flood: " + b"a" * 20000 + b"\r\n\r\n"))
    print(raw_exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))


def chat():
    question = {"messages": [{"role": "user",
                              "content": "What is the capital of France?"}],
                "max_tokens": 8, "temperature": 0}
    status, answer = post("/v1/chat/completions", question)
    message = answer["choices"][0]["message"]
    print("chat:", status, message["role"], message["content"])
    events = stream("/v1/chat/completions", question)
    chunks = [json.loads(e) for e in events[:-1]]
    print("first delta:", json.dumps(chunks[0]["choices"][0]["delta"]))
    print("stream equals the whole answer:",
          "".join(c["choices"][0]["delta"].get("content", "")
                  for c in chunks) == message["content"])
    status, scored = post("/v1/chat/completions",
                          dict(question, logprobs=True, top_logprobs=2))
    content = scored["choices"][0]["logprobs"]["content"]
    print("logprobs spell the answer:",
          "".join(t["token"] for t in content) == message["content"],
          "greedy is the top:",
          all(t["top_logprobs"][0]["token"] == t["token"] for t in content))
    # Two greedy choices: the same answer twice, each streamed with its own
    # role and finish.
    events = stream("/v1/chat/completions", dict(question, n=2))
    chunks = [c for e in events[:-1] for c in json.loads(e)["choices"]]
    print("two choices stream roles:",
          sorted(c["index"] for c in chunks if "role" in c["delta"]),
          "finishes:", sorted(c["index"] for c in chunks
                              if c["finish_reason"]),
          "both the answer:",
          all("".join(c["delta"].get("content", "") for c in chunks
                      if c["index"] == i) == message["content"]
              for i in range(2)))


def auth():
    body = {"prompt": "Once upon a time", "max_tokens": 2, "temperature": 0}
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": "s3cret"},
                    {"Authorization": "Bearer s3cret"}):
        status, answer = post("/v1/completions", body, headers=headers)
        print(json.dumps(headers), status,
              answer["error"]["code"] if status != 200
              else answer["usage"]["completion_tokens"])
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    connection.request("GET", "/health")
    print("health without a key:", connection.getresponse().status)


def metrics_lines():
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    connection.request("GET", "/metrics")
    lines = connection.getresponse().read().decode().splitlines()
    connection.close()
    return lines


def metric(name):
    return next(int(line.split()[1]) for line in metrics_lines()
                if line.startswith("kvopt_" + name + " "))


def preempt():
    # Four pages of 16 tokens a layer: each request fits alone, several at
    # once may not (six clients at once overlap only as their timing
    # allows), and four choices of one request start together, each needing
    # three pages by its end, so some are surely preempted and prefilled
    # again. Every answer is still what its request gets alone.
    greedy = {"temperature": 0, "ignore_eos": True}
    print("answers equal to alone: %d of %d" % answered_as_alone(
        [dict(greedy, prompt=p, max_tokens=20 + 2 * i)
         for i, p in enumerate(PROMPTS)]))
    body = dict(greedy, prompt=PROMPTS[1], max_tokens=40)
    alone = complete(body)["choices"][0]["text"]
    choices = complete(dict(body, n=4))["choices"]
    print("choices equal to alone: %d of %d" % (
        sum(c["text"] == alone for c in choices), len(choices)))
    print("preempted:", metric("preemptions_total") > 0,
          "recomputed:", metric("recomputed_tokens_total") > 0)
    # More than the whole cache: it ends with the cache's sentence.
    status, answer = post("/v1/completions",
                          dict(greedy, prompt=PROMPTS[0], max_tokens=100))
    print(status, answer["error"]["message"])


def resume():
    greedy = {"temperature": 0, "ignore_eos": True}
    first = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=12))
    follow = PROMPTS[0] + first["choices"][0]["text"] + " Then"
    answer = complete(dict(greedy, prompt=follow, max_tokens=10))
    print("resumed:", metric("resumed_requests_total"),
          "reused tokens:", metric("reused_tokens_total"),
          "of", answer["usage"]["prompt_tokens"])
    print("answer equals kvopt run:",
          answer["choices"][0]["text"] == kvopt_run(follow, 10))
    # Two requests of 12 and 10 tokens: two first tokens, 20 gaps, two
    # ends; buckets cumulative up to +Inf, which holds them all.
    print("histograms:", [metric(h + "_count") for h in (
        "request_queue_time_seconds", "time_to_first_token_seconds",
        "inter_token_latency_seconds", "e2e_request_latency_seconds")])
    buckets = [int(line.split()[1]) for line in metrics_lines()
               if line.startswith("kvopt_time_to_first_token_seconds_bucket")]
    print("cumulative:", buckets == sorted(buckets), "+Inf:", buckets[-1])


def prefix():
    # Two requests that begin with the same long text: the second takes the
    # whole cache pages of it that the first left, as a conversation with a
    # shared system prompt would.
    system = ("Once upon a time, there was a little girl named Lily. She "
              "liked to play in the park with her friends. One day, she saw "
              "a big tree with red apples. ")
    greedy = {"temperature": 0, "ignore_eos": True, "max_tokens": 8}
    first = complete(dict(greedy, prompt=system + "She wanted one."))
    second = complete(dict(greedy, prompt=system + "Tom came to help."))
    tokens = metric("shared_prefix_tokens_total")
    print("shared:", metric("shared_prefix_requests_total"),
          "whole pages:", tokens > 0 and tokens % 16 == 0,
          "of fewer than the prompt:",
          tokens < second["usage"]["prompt_tokens"])
    print("answers equal kvopt run:",
          first["choices"][0]["text"] == kvopt_run(system + "She wanted one.",
                                                   8),
          second["choices"][0]["text"] == kvopt_run(
              system + "Tom came to help.", 8))


def choices():
    # n choices of one prompt: choice i samples as a request of its own with
    # seed + i, the others share the first's prompt pages, and a stream
    # carries every choice's chunks by index.
    prompt = ("Once upon a time, there was a little girl named Lily. She "
              "liked to play in the park with her friends. One day, she saw "
              "a big tree with red apples. She wanted to")
    body = {"prompt": prompt, "max_tokens": 8, "temperature": 1.0,
            "seed": 5, "ignore_eos": True}
    before = metric("shared_prefix_requests_total")
    answer = complete(dict(body, n=3))
    texts = [c["text"] for c in answer["choices"]]
    print("indexes:", [c["index"] for c in answer["choices"]],
          "completion tokens:", answer["usage"]["completion_tokens"],
          "prompt tokens counted once:",
          answer["usage"]["prompt_tokens"] ==
          complete(dict(body, max_tokens=1))["usage"]["prompt_tokens"])
    alone = [complete(dict(body, seed=5 + i))["choices"][0]["text"]
             for i in range(3)]
    print("each as its seed alone:", texts == alone,
          "not all alike:", len(set(texts)) > 1)
    print("shared the prompt's pages:",
          metric("shared_prefix_requests_total") - before >= 2)
    two = dict(body, n=2, max_tokens=6, seed=9)
    whole = [c["text"] for c in complete(two)["choices"]]
    streamed, finishes = {}, set()
    for data in stream("/v1/completions", two)[:-1]:
        for c in json.loads(data)["choices"]:
            finishes.update([c["index"]] if c["finish_reason"] else [])
            streamed[c["index"]] = streamed.get(c["index"], "") + c["text"]
    print("stream: finishes", sorted(finishes), "texts as whole:",
          [streamed.get(i) for i in range(2)] == whole)
    print(error("/v1/completions", {"prompt": "x", "n": 200}))
    # A batch of prompts (OpenAI's list form): choice p * n + i answers
    # prompt p, each as that prompt alone; with echo and logprobs each
    # prompt is scored as alone (lm-evaluation-harness batches this way).
    greedy = {"temperature": 0, "ignore_eos": True, "max_tokens": 6}
    batch = complete(dict(greedy, prompt=PROMPTS[:2], n=2))
    one = [complete(dict(greedy, prompt=p)) for p in PROMPTS[:2]]
    print("batch indexes:", [c["index"] for c in batch["choices"]],
          "answers as alone:",
          [c["text"] for c in batch["choices"]] ==
          [one[0]["choices"][0]["text"]] * 2 + [one[1]["choices"][0]["text"]] * 2,
          "prompt tokens:", batch["usage"]["prompt_tokens"] ==
          sum(o["usage"]["prompt_tokens"] for o in one))
    scored = dict(max_tokens=0, logprobs=1, echo=True)
    ids = [[1, 80, 147, 201], [1, 80, 388, 1174, 1714]]
    pair = complete(dict(scored, prompt=ids))["choices"]
    # vLLM's stop_token_ids: the answer ends before the first of them.
    plain = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=40))
    full = plain["choices"][0]["text"]
    status, tokenized = post("/tokenize", {"prompt": full,
                                           "add_special_tokens": False})
    cut = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=40,
                        stop_token_ids=[tokenized["tokens"][2]]))["choices"][0]
    print("stop_token_ids:", cut["finish_reason"], full.startswith(cut["text"]),
          len(cut["text"]) < len(full),
          error("/v1/completions", {"prompt": "x",
                                    "stop_token_ids": [5, 99999]}))
    # vLLM's min_tokens: no stop token drawn and no stop string looked for
    # in the first tokens.
    first10 = kvopt_run(PROMPTS[0], 10)
    held = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=40,
                         stop_token_ids=[tokenized["tokens"][2]],
                         min_tokens=5))
    spaced = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=40,
                           stop=[" "], min_tokens=10))["choices"][0]
    print("min_tokens:", held["usage"]["completion_tokens"] >= 5,
          spaced["text"].startswith(first10), spaced["finish_reason"],
          len(spaced["text"]) < len(full))
    # OpenAI's penalties on the answer's own tokens, as kvopt run applies
    # them.
    penalised = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=40,
                              presence_penalty=2, frequency_penalty=0.5))
    print("penalties change the answer:",
          penalised["choices"][0]["text"] != plain["choices"][0]["text"],
          "as kvopt run:", penalised["choices"][0]["text"] ==
          kvopt_run(PROMPTS[0], 40, "--presence-penalty", "2",
                    "--frequency-penalty", "0.5"))
    print("batch scored as alone:",
          [c["logprobs"] for c in pair] ==
          [complete(dict(scored, prompt=[i]))["choices"][0]["logprobs"]
           for i in ids])


def logprobs():
    greedy = {"temperature": 0, "ignore_eos": True}
    answer = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=8,
                           logprobs=2, echo=True))
    choice, usage = answer["choices"][0], answer["usage"]
    lp, prompt = choice["logprobs"], usage["prompt_tokens"]
    print("entries:", len(lp["tokens"]), "=", prompt, "+",
          usage["completion_tokens"])
    print("echoed:", choice["text"].startswith(PROMPTS[0]),
          "first token unscored:",
          lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None)
    print("probabilities:", all(v <= 0 for v in lp["token_logprobs"][1:]),
          "offsets rise:", lp["text_offset"] == sorted(lp["text_offset"]))
    # Greedy: each generated token is its distribution's most likely.
    print("greedy is the top:",
          all(abs(lp["token_logprobs"][i] -
                  max(lp["top_logprobs"][i].values())) < 1e-6
              for i in range(prompt, len(lp["tokens"]))))
    # Scoring the prompt alone (max_tokens 0, as lm-evaluation-harness does
    # with 1) gives the same numbers as the prompt of a generation.
    alone = complete(dict(prompt=PROMPTS[0], max_tokens=0, logprobs=2,
                          echo=True))["choices"][0]
    print("prompt scored alone:", alone["text"] == PROMPTS[0],
          alone["logprobs"]["token_logprobs"] == lp["token_logprobs"][:prompt])
    # Two greedy choices echo the prompt, scored once, alike.
    pair = complete(dict(greedy, prompt=PROMPTS[0], max_tokens=8, logprobs=2,
                         echo=True, n=2))["choices"]
    print("two echoed choices:", [c["logprobs"] for c in pair] == [lp, lp],
          pair[1]["text"] == choice["text"])
    # Streamed, the chunks carry the same log probabilities in order, and
    # with a stop string the tokens after it are left out alike.
    body = dict(greedy, prompt=PROMPTS[0], max_tokens=8, logprobs=2)
    whole = complete(body)["choices"][0]["logprobs"]
    parts = [json.loads(e)["choices"] for e in
             stream("/v1/completions", body)[:-1]]
    joined = {k: sum((c[0]["logprobs"][k] for c in parts
                      if c and c[0]["logprobs"]), []) for k in whole}
    cut = complete(dict(body, stop=[" girl"]))["choices"][0]
    print("streamed logprobs equal:", joined == whole,
          "cut at the stop string:",
          all(o < len(cut["text"]) for o in cut["logprobs"]["text_offset"]),
          len(cut["logprobs"]["tokens"]) < len(whole["tokens"]))
    # vLLM's tokenizer endpoints, which lm-evaluation-harness's remote
    # tokenizer reads: the prompt's ids are the ones a completion counts,
    # and they decode back to its text.
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    connection.request("GET", "/tokenizer_info")
    info = json.loads(connection.getresponse().read())
    connection.close()
    ids = post("/tokenize", {"prompt": PROMPTS[0]})[1]
    text = post("/detokenize", {"tokens": ids["tokens"]})[1]["prompt"]
    print("tokenize:", ids["count"] == prompt, "eos:", info["eos_token"],
          "round trip:", text.endswith(PROMPTS[0]),
          error("/detokenize", {"tokens": [99999]}))
    # lm-evaluation-harness's loglikelihood request (local-completions,
    # tokenized): context and continuation as one batch of token ids, then
    # its parse_logprobs: the continuation's sum, and whether each of its
    # tokens was the most likely.
    context, continuation = [1, 80, 147, 201, 282], [215, 286, 598]
    harness = complete({"model": "m", "prompt": [context + continuation],
                        "temperature": 0, "max_tokens": 1, "logprobs": 1,
                        "seed": 1234, "echo": True})["choices"][0]["logprobs"]
    tail = slice(len(context), -1)
    total = sum(harness["token_logprobs"][tail])
    greedy_tail = all(t == max(top.values()) for t, top in
                      zip(harness["token_logprobs"][tail],
                          harness["top_logprobs"][tail]))
    print("lm-eval request: entries", len(harness["tokens"]),
          "continuation log-likelihood below 0:", total < 0,
          "greedy:", greedy_tail)


def busy():
    holder = socket.create_connection(("127.0.0.1", PORT))
    time.sleep(0.2)  # Accepted: the one connection allowed is open.
    print("second connection:",
          raw_exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
    holder.close()
    for _ in range(50):  # Its thread ends once it reads the close.
        answer = raw_exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        if answer.endswith("200 OK"):
            break
        time.sleep(0.1)
    print("after it closed:", answer)


{"tiny": tiny, "chat": chat, "auth": auth, "busy": busy,
 "preempt": preempt, "resume": resume, "prefix": prefix, "noshare": prefix,
 "choices": choices, "logprobs": logprobs}[SCENARIO]()
SERVER.send_signal(signal.SIGTERM)
SERVER.wait(timeout=60)
rest = SERVER.stderr.read().strip().splitlines()
print("exit:", SERVER.returncode)
print(rest[-1] if rest else "(no stderr)")
