#!/usr/bin/env python3
"""A stdlib-only emulator of a vLLM 0.16.0 OpenAI-compatible server (`vllm serve`).

Run it with the argv of `vllm serve` (a leading "serve" is accepted and dropped):

    python3 emulator.py Qwen/Qwen2.5-32B-Instruct --host 0.0.0.0 --port 18150 \
        --tensor-parallel-size 4 --max-model-len 4096 --no-enable-prefix-caching

Unknown flags are accepted and ignored (nixl's renderings are checked against vLLM's
real parser by check_args.py, not here). It writes vLLM-format log lines to
stdout/stderr (`(APIServer pid=N) INFO MM-DD HH:MM:SS [file.py:line] ...`) and
serves, on --host/--port:

  GET  /health            200 (empty body) once "loaded"; before that the port is
                          bound but not listening, so connections are refused, as
                          with the real server while its engine starts.
  GET  /v1/models, /version, /metrics (a few vllm:* counters, prompt tokens by
                          source, finished requests, and with NixlConnector its
                          histograms of bytes and transfer time and its failed-transfer,
                          failed-notification and expired-KV counters)
  POST /v1/completions    streaming (SSE, one chunk per output token, the usage
                          chunk when stream_options.include_usage, `data: [DONE]`)
                          and non-streaming; vLLM 0.16's validation of prompt and
                          max_tokens against --max-model-len (HTTP 400, vLLM's text).

Tokens: a prompt's token count is its number of whitespace-separated words (a
list of ints counts as token ids). make_tokenizer.py builds the matching
word-level tokenizer for the real `vllm bench serve` client. Every output token
is one word " tN"; generation always runs to max_tokens (finish_reason "length";
no EOS is modelled).

Timing (milliseconds, divided by NIXL_EMULATOR_SPEED, default 1):
  TTFT   = NIXL_EMULATOR_TTFT_BASE_MS (2) + NIXL_EMULATOR_PREFILL_MS_PER_TOKEN (0.01)
           * (prompt tokens not found in the prefix cache)
  decode = NIXL_EMULATOR_DECODE_MS (3) per output token, times
           (1 + NIXL_EMULATOR_CONTENTION (0.05) * (running requests - 1)), times a
           per-request lognormal factor exp(N(0, NIXL_EMULATOR_JITTER)) (JITTER 0:
           no noise beyond the machine's own)
  KV pull on a consumer = NIXL_EMULATOR_KV_PULL_MS_PER_TOKEN (0.001) per token.
Prefix caching (vLLM default on; --no-enable-prefix-caching turns it off): full
16-token blocks of every prefilled prompt are remembered (hash chain, like vLLM);
a later prompt with the same leading blocks skips their prefill (at most
prompt_len - 1 tokens hit, as in vLLM).

Disaggregation (--kv-transfer-config with kv_connector NixlConnector):
  kv_producer/kv_both: a request carrying kv_transfer_params.do_remote_decode=true
    that finishes length-capped returns NixlConnector's kv_transfer_params
    {do_remote_prefill, do_remote_decode, remote_block_ids, remote_engine_id,
     remote_request_id, remote_host, remote_port, tp_size} (host/port from
    VLLM_NIXL_SIDE_CHANNEL_HOST/PORT, defaults localhost/5600).
  kv_consumer/kv_both: a request with do_remote_prefill and the remote_* keys skips
    local prefill (KV "pulled"). With NIXL_EMULATOR_SIDE_CHANNEL=1 the producer
    listens on its side channel (only the producer: the consumer's listener is never
    dialled here) and the consumer really connects to remote_host:remote_port for each
    READ, saying how many bytes it reads; a failed handshake logs NixlConnector's
    failure line and, per kv_load_failure_policy (default "recompute"), recomputes the
    prefill locally or fails the request.
  KV bytes moved: every consumer rank READs its own KV heads, max(1, kv_heads // tp) of
    NIXL_EMULATOR_KV_HEADS (8), and the ranks' records are summed as vLLM's executor sums
    them: vllm:nixl_bytes_transferred grows by tp x the rank's share of
    NIXL_EMULATOR_KV_BYTES_PER_TOKEN per pulled token (the whole model's KV until the
    heads are replicated), with max(tp, the producer's tp_size) transfers per request.
  Expired KV (producer, with the side channel): a request whose KV no consumer read within
    VLLM_NIXL_ABORT_REQUEST_TIMEOUT seconds (480) is released at the next request or
    /metrics read, logging NixlConnector's "Releasing expired KV blocks" warning and
    counting vllm:nixl_num_kv_expired_reqs_total. A READ leaves the producer's node on
    the same device it reaches the consumer's (tx bytes in the sysfs counters below).

Start-up checks as vLLM does them: --max-model-len above the model's derived
length (NIXL_EMULATOR_MAX_POSITION_EMBEDDINGS, default 32768, times a yarn factor
from --hf-overrides rope_scaling) fails start-up unless
VLLM_ALLOW_LONG_MAX_MODEL_LEN=1; a KV cache too small for one max-length request
(NIXL_EMULATOR_KV_CACHE_GIB per GPU, default 20, scaled by
--gpu-memory-utilization/0.9; NIXL_EMULATOR_KV_BYTES_PER_TOKEN for the whole
model, default 262144 = Qwen2.5-32B bf16, split over --tensor-parallel-size)
fails start-up with vLLM 0.16's message.

Fault injection (environment):
  NIXL_EMULATOR_START_DELAY=s     seconds of "loading" before /health answers (0).
  NIXL_EMULATOR_CRASH_AFTER=s     s seconds after process start, print a genuine
                                  fatal traceback and exit non-zero: an
                                  EngineCore CUDA OOM (torch.OutOfMemoryError text
                                  from a real log) if the server was up, the
                                  KV-cache-too-small start-up failure otherwise.
                                  NIXL_EMULATOR_CRASH_KIND=oom|kv_cache forces one.
  NIXL_EMULATOR_CRASH_EXIT=n      exit status of the crash (1).
  NIXL_EMULATOR_FAIL_EVERY=N      every Nth accepted completion request fails as a
                                  vLLM generation error (finish_reason "error"):
                                  streamed -> HTTP 200, then
                                  `data: {"error": {..., "type": "InternalServerError",
                                  "code": 500}}` and `data: [DONE]` (the real
                                  client then records "Never received a valid
                                  chunk..."); non-streamed -> HTTP 500 with the
                                  ErrorResponse JSON.
  NIXL_EMULATOR_CAPACITY_RPS=r    admit at most r requests per second, one slot each;
                                  above that rate requests queue and the wait counts in
                                  their TTFT (a known saturation point to search for).
  NIXL_EMULATOR_KV_FAULT=none_transferred  a consumer ignores the producer's KV and
                                  prefills itself (no bytes move; the request succeeds).
  NIXL_EMULATOR_KV_FAULT=recompute         a consumer pulls the KV and prefills again.
  NIXL_EMULATOR_KV_FAULT=tcp_fallback      the KV moves, but over the node's TCP interface
                                  whatever the transport asked for (UCX's silent fallback
                                  when its srd transport does not come up).
  NIXL_EMULATOR_KV_FAULT=side_channel_down  a producer does not listen on its side channel
                                  (as when VLLM_NIXL_SIDE_CHANNEL_HOST names an address the
                                  decode node cannot reach): with NIXL_EMULATOR_SIDE_CHANNEL=1
                                  every consumer handshake fails, the consumer recomputes, and
                                  the producer's KV expires unread.
  NIXL_EMULATOR_FAIL_MODE=http500 makes every injected failure an HTTP 500 JSON
                                  response, streamed or not.
  NIXL_EMULATOR_FAIL_AFTER_TOKENS=k  streamed failures come after k tokens (0).
  NIXL_EMULATOR_MAX_CHARS_PER_TOKEN=n  enables vLLM's character pre-check
                                  (n = the tokenizer's longest token; off by default).
The node's counters (what /sys and nvidia-smi show on a GPU node):
  NIXL_EMULATOR_SYSFS_ROOT=dir    keep the node's byte counters in the kernel's sysfs
                                  layout under dir (relative: to the working directory,
                                  the node's), one integer per file, created if absent
                                  and never reset: dir/class/infiniband/rdmap0s31/ports/1/
                                  hw_counters/{rx,tx}_bytes (the EFA device) and
                                  dir/class/net/ens5/statistics/{rx,tx}_bytes (the ENI).
                                  A consumer's KV pull is received on the EFA device when
                                  the transport is EFA's (UCX_TLS naming srd, or NIXL's
                                  LIBFABRIC backend with FI_PROVIDER=efa), on the ENI
                                  otherwise; every request's body is received on the ENI.
                                  With the side channel, the producer's node sends the KV
                                  (tx) on its own KV device the same way.
  NIXL_FAKE_GPU_DIR=dir           while up, record this server's GPU memory in dir/<pid>
                                  ("<tp> <MiB per GPU>": --gpu-memory-utilization x
                                  NIXL_FAKE_GPU_MIB, default 46068, an L40S), read by the
                                  nvidia-smi stand-in in bin/.
The caller records the pid (`echo $! > vllm.pid`); the emulator writes no pid file.
"""

import argparse
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VLLM_VERSION = "0.16.0"
SITE = "/usr/local/lib/python3.12/dist-packages"
BLOCK_SIZE = 16
T0 = time.time()


def env_float(name, default):
    v = os.environ.get(name)
    try:
        return float(v) if v not in (None, "") else default
    except ValueError:
        return default


SPEED = env_float("NIXL_EMULATOR_SPEED", 1.0) or 1.0


def ms(x):
    return x / 1000.0 / SPEED


# ---------------------------------------------------------------- logging

_log_lock = threading.Lock()
PID = os.getpid()
ENGINE_PID = PID + 1
WORKER_PID = PID + 2


def _ts():
    return time.strftime("%m-%d %H:%M:%S")


def vlog(level, where, msg, proc="APIServer", pid=None, stream=None):
    """One vLLM log record: every physical line gets the process prefix."""
    pid = PID if pid is None else pid
    stream = stream or sys.stdout
    head = f"({proc} pid={pid}) {level} {_ts()} [{where}] "
    lines = msg.split("\n")
    out = [head + lines[0]] + [f"({proc} pid={pid}) " + l for l in lines[1:]]
    with _log_lock:
        stream.write("\n".join(out) + "\n")
        stream.flush()


def vlog_exc(level, where, msg, tb, proc, pid):
    """logger.exception(): the message, then the traceback, each line under the same header."""
    head = f"({proc} pid={pid}) {level} {_ts()} [{where}] "
    with _log_lock:
        sys.stdout.write(head + msg + "\n")
        for line in tb.rstrip("\n").split("\n"):
            sys.stdout.write(head + line + "\n")
        sys.stdout.flush()


def raw(text, proc="APIServer", pid=None, stream=None):
    pid = PID if pid is None else pid
    stream = stream or sys.stderr
    with _log_lock:
        for line in text.rstrip("\n").split("\n"):
            stream.write(f"({proc} pid={pid}) {line}\n")
        stream.flush()


def uvicorn_log(msg):
    raw("INFO:     " + msg, stream=sys.stderr)


# ---------------------------------------------------------------- arguments


def parse_args(argv):
    if argv and argv[0] == "serve":
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="vllm serve", add_help=False)
    ap.add_argument("model_tag", nargs="?", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--host", default=None)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--served-model-name", nargs="+", default=None)
    ap.add_argument("--max-model-len", default=None)
    ap.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--max-num-batched-tokens", type=int, default=None)
    ap.add_argument("--max-num-seqs", type=int, default=None)
    ap.add_argument("--enable-prefix-caching", dest="enable_prefix_caching", action="store_true", default=None)
    ap.add_argument("--no-enable-prefix-caching", dest="enable_prefix_caching", action="store_false")
    ap.add_argument("--enable-chunked-prefill", dest="enable_chunked_prefill", action="store_true", default=None)
    ap.add_argument("--no-enable-chunked-prefill", dest="enable_chunked_prefill", action="store_false")
    ap.add_argument("--enforce-eager", action="store_true", default=False)
    ap.add_argument("--kv-transfer-config", default=None)
    ap.add_argument("--hf-overrides", default=None)
    ap.add_argument("--enable-prompt-tokens-details", action="store_true", default=False)
    ap.add_argument("--disable-uvicorn-access-log", action="store_true", default=False)
    ap.add_argument("--block-size", type=int, default=None)
    args, unknown = ap.parse_known_args(argv)
    args.model = args.model_tag or args.model or "facebook/opt-125m"
    return args, unknown, argv


def parse_len(v):
    """--max-model-len accepts 4096, 4k, 4K (1000 / 1024), as vLLM's human_readable_int."""
    if v is None:
        return None
    s = str(v).strip()
    mult = {"k": 1000, "K": 1024, "m": 10**6, "M": 2**20, "g": 10**9, "G": 2**30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


# ---------------------------------------------------------------- state


class Engine:
    def __init__(self, args):
        self.args = args
        self.model = args.model
        self.served = (args.served_model_name or [args.model])[0]
        self.served_all = args.served_model_name or [args.model]
        self.tp = args.tensor_parallel_size
        self.prefix_caching = True if args.enable_prefix_caching is None else args.enable_prefix_caching
        self.block_size = args.block_size or BLOCK_SIZE
        self.lock = threading.Lock()
        self.cache = set()  # block hashes
        self.running = 0
        self.num_requests = 0  # accepted completion requests, for FAIL_EVERY
        self.ready = False
        self.counters = dict(prompt_tokens=0, generation_tokens=0, prefix_queries=0, prefix_hits=0,
                             success=0, failed=0, local_compute=0, local_cache_hit=0,
                             external_kv_transfer=0, nixl_bytes=0.0, nixl_xfers=0, nixl_xfer_s=0.0,
                             nixl_failed=0, nixl_failed_notifications=0, nixl_kv_expired=0)
        self.interval = dict(prompt_tokens=0, generation_tokens=0, prefix_queries=0, prefix_hits=0)
        self.next_slot = 0.0  # NIXL_EMULATOR_CAPACITY_RPS admission
        self.kv = None
        self.engine_id = None
        self.next_block = 1
        if args.kv_transfer_config:
            self.kv = json.loads(args.kv_transfer_config)
            if not isinstance(self.kv, dict):
                raise ValueError("not a JSON object")
            self.engine_id = self.kv.get("engine_id") or str(uuid.uuid4())
        self.side_host = os.environ.get("VLLM_NIXL_SIDE_CHANNEL_HOST", "localhost")
        self.side_port = int(os.environ.get("VLLM_NIXL_SIDE_CHANNEL_PORT", "5600"))
        self.sent = {}  # producer: remote_request_id -> blocks
        # producer, with the side channel: remote_request_id -> when its KV expires unread
        # (finished + VLLM_NIXL_ABORT_REQUEST_TIMEOUT), until a consumer reads it
        self.unread = {}
        self.max_model_len = None

    @property
    def role(self):
        return (self.kv or {}).get("kv_role") if (self.kv or {}).get("kv_connector") else None

    def is_producer(self):
        return self.role in ("kv_producer", "kv_both")

    def is_consumer(self):
        return self.role in ("kv_consumer", "kv_both")

    def block_hashes(self, tokens):
        hashes, prev = [], b""
        for i in range(0, len(tokens) - len(tokens) % self.block_size, self.block_size):
            h = hashlib.sha256(prev + "\x00".join(map(str, tokens[i:i + self.block_size])).encode()).digest()
            hashes.append(h)
            prev = h
        return hashes

    def cached_tokens(self, tokens):
        if not self.prefix_caching:
            return 0, []
        hashes = self.block_hashes(tokens)
        hit = 0
        with self.lock:
            for h in hashes:
                if h not in self.cache:
                    break
                hit += 1
        # vLLM recomputes at least the last token: hits are capped at len - 1
        max_hit_blocks = (len(tokens) - 1) // self.block_size
        return min(hit, max_hit_blocks) * self.block_size, hashes

    def remember(self, hashes):
        if self.prefix_caching:
            with self.lock:
                self.cache.update(hashes)

    def expire_unread(self):
        """Producer: releases the KV no consumer read in time, as NixlConnector's worker does
        at each step (nixl_connector.py get_finished), counting vllm:nixl_num_kv_expired_reqs."""
        now = time.time()
        with self.lock:
            expired = [rid for rid, at in self.unread.items() if at <= now]
            for rid in expired:
                del self.unread[rid]
                self.sent.pop(rid, None)
                self.counters["nixl_kv_expired"] += 1
        for rid in expired:
            vlog("WARNING", "nixl_connector.py:1976",
                 "Releasing expired KV blocks for request %s which were retrieved by %d decode worker(s) within %d "
                 "seconds." % (rid, 0, abort_timeout()), proc="Worker_TP0", pid=WORKER_PID)


def abort_timeout():
    """VLLM_NIXL_ABORT_REQUEST_TIMEOUT, an int as vllm/envs.py reads it (480)."""
    return int(os.environ.get("VLLM_NIXL_ABORT_REQUEST_TIMEOUT", "480"))


def kv_bytes_over_ranks(tokens, tp):
    """The KV bytes of `tokens` over a server's `tp` ranks: each rank holds max(1, kv_heads // tp)
    heads (vLLM's ModelConfig.get_num_kv_heads), so above kv_heads ranks heads are replicated."""
    whole = env_float("NIXL_EMULATOR_KV_BYTES_PER_TOKEN", 262144.0)
    heads = max(int(env_float("NIXL_EMULATOR_KV_HEADS", 8)), 1)
    tp = max(tp, 1)
    return tokens * whole / heads * max(1, heads // tp) * tp


ENGINE = None


# ---------------------------------------------------------------- vLLM's texts


def too_long_error(n_tokens, max_tokens, max_model_len, text_len=None):
    """vLLM 0.16 renderers/params.py TokenizeParams: (message, param, value) or None."""
    if max_tokens > max_model_len:
        # __post_init__; note vLLM's own missing space and `{max_total_tokens=}`
        return (f"max_tokens={max_tokens}cannot be greater than "
                f"max_model_len=max_total_tokens={max_model_len}. "
                f"Please request fewer output tokens."), "max_tokens", max_tokens
    max_input = max_model_len - max_tokens
    mcpt = int(env_float("NIXL_EMULATOR_MAX_CHARS_PER_TOKEN", 0))
    if mcpt > 0 and text_len is not None and text_len > max_input * mcpt:
        return (f"You passed {text_len} input characters "
                f"and requested {max_tokens} output tokens. "
                f"However, the model's context length is only "
                f"{max_model_len} tokens, resulting in a maximum "
                f"input length of {max_input} tokens "
                f"(at most {max_input * mcpt} characters). "
                f"Please reduce the length of the input prompt."), "input_text", text_len
    # the tokenizer truncates at max_input + 1 (get_encode_kwargs), so that is
    # the count the message reports for longer prompts
    seen = min(n_tokens, max_input + 1) if text_len is not None else n_tokens
    if seen > max_input:
        return (f"You passed {seen} input tokens "
                f"and requested {max_tokens} output tokens. "
                f"However, the model's context length is only "
                f"{max_model_len} tokens, resulting in a maximum "
                f"input length of {max_input} tokens. "
                f"Please reduce the length of the input prompt."), "input_tokens", seen
    return None


def validation_message(msg, param, value):
    # VLLMValidationError.__str__ appends the parameter and value
    extras = []
    if param is not None:
        extras.append(f"parameter={param}")
    if value is not None:
        extras.append(f"value={value}")
    return f"{msg} ({', '.join(extras)})" if extras else msg


def error_body(message, etype, code, param=None, compact=True):
    body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    if compact:  # starlette JSONResponse
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(body)  # create_streaming_error_response: json.dumps(model_dump())


OOM_LINE = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 698.00 MiB. GPU 0 has a total "
            "capacity of 23.56 GiB of which 559.00 MiB is free. Including non-PyTorch memory, this process "
            "has 23.01 GiB memory in use. Of the allocated memory 22.08 GiB is allocated by PyTorch, and "
            "614.16 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large "
            "try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
            "documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables  )")


def crash_oom():
    tb_worker = f"""Traceback (most recent call last):
  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 858, in worker_busy_loop
    output = func(*args, **kwargs)
             ^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/torch/utils/_contextlib.py", line 120, in decorate_context
    return func(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/worker/gpu_worker.py", line 641, in execute_model
    output = self.model_runner.execute_model(
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/worker/gpu_model_runner.py", line 3301, in execute_model
    model_output = self._model_forward(
                   ^^^^^^^^^^^^^^^^^^^^
{OOM_LINE}"""
    vlog_exc("ERROR", "multiproc_executor.py:863", "WorkerProc hit an exception.", tb_worker,
             "Worker_TP0", WORKER_PID)
    short = OOM_LINE.split(": ", 1)[1]
    tb_core = f"""Traceback (most recent call last):
  File "{SITE}/vllm/v1/engine/core.py", line 999, in run_engine_core
    engine_core.run_busy_loop()
  File "{SITE}/vllm/v1/engine/core.py", line 1026, in run_busy_loop
    self._process_engine_step()
  File "{SITE}/vllm/v1/engine/core.py", line 1060, in _process_engine_step
    outputs, model_executed = self.step_fn()
                              ^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core.py", line 514, in step_with_batch_queue
    model_output = future.result()
                   ^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 358, in get_response
    raise RuntimeError(
RuntimeError: Worker failed with error '{short}', please check the stack trace above for the root cause"""
    vlog_exc("ERROR", "core.py:1008", "EngineCore encountered a fatal error.", tb_core, "EngineCore", ENGINE_PID)
    vlog("ERROR", "core_client.py:617", "Engine core proc EngineCore died unexpectedly, shutting down client.")
    tb_api = f"""Traceback (most recent call last):
  File "{SITE}/vllm/v1/engine/async_llm.py", line 666, in output_handler
    outputs = await engine_core.get_output_async()
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core_client.py", line 576, in get_output_async
    raise EngineDeadError()
vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."""
    vlog_exc("ERROR", "async_llm.py:710", "AsyncLLM output_handler failed.", tb_api, "APIServer", PID)
    vlog("INFO", "launcher.py:122", "Shutting down FastAPI HTTP server.")
    uvicorn_log("Shutting down")
    uvicorn_log("Waiting for application shutdown.")
    uvicorn_log("Application shutdown complete.")
    uvicorn_log(f"Finished server process [{PID}]")


def kv_too_small_message(max_model_len, tp, gmu):
    need, avail, est = kv_budget(max_model_len, tp, gmu)
    gib = 1 << 30
    est_msg = (f"Based on the available memory, the estimated maximum model length is {est}. "
               if est > 0 else "")
    return (f"To serve at least one request with the models's max seq len "
            f"({max_model_len}), ({round(need / gib, 2)} GiB KV "
            f"cache is needed, which is larger than the available KV cache "
            f"memory ({round(avail / gib, 2)} GiB). {est_msg}"
            f"Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
            f"when initializing the engine. "
            f"See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ "
            f"for more details.")


def kv_budget(max_model_len, tp, gmu):
    per_tok = env_float("NIXL_EMULATOR_KV_BYTES_PER_TOKEN", 262144.0) / max(tp, 1)
    avail = env_float("NIXL_EMULATOR_KV_CACHE_GIB", 20.0) * (gmu / 0.9) * (1 << 30)
    need = max_model_len * per_tok
    est = int(avail // per_tok) // BLOCK_SIZE * BLOCK_SIZE if per_tok > 0 else 0
    return need, avail, est


def crash_startup(message, exc="ValueError"):
    tb_core = f"""Traceback (most recent call last):
  File "{SITE}/vllm/v1/engine/core.py", line 996, in run_engine_core
    engine_core = EngineCoreProc(*args, engine_index=dp_rank, **kwargs)
                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core.py", line 740, in __init__
    super().__init__(
  File "{SITE}/vllm/v1/engine/core.py", line 113, in __init__
    num_gpu_blocks, num_cpu_blocks, kv_cache_config = self._initialize_kv_caches(
                                                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core.py", line 259, in _initialize_kv_caches
    kv_cache_configs = get_kv_cache_configs(
                       ^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/core/kv_cache_utils.py", line 1516, in get_kv_cache_configs
    _check_enough_kv_cache_memory(
  File "{SITE}/vllm/v1/core/kv_cache_utils.py", line 634, in _check_enough_kv_cache_memory
    raise ValueError(
{exc}: {message}"""
    vlog_exc("ERROR", "core.py:1006", "EngineCore failed to start.", tb_core, "EngineCore", ENGINE_PID)
    raw("Process EngineCore:\n" + tb_core.replace("Traceback", "Traceback", 1), "EngineCore", ENGINE_PID)
    tb_api = f"""Traceback (most recent call last):
  File "/usr/local/bin/vllm", line 10, in <module>
    sys.exit(main())
             ^^^^^^
  File "{SITE}/vllm/entrypoints/cli/main.py", line 73, in main
    args.dispatch_function(args)
  File "{SITE}/vllm/entrypoints/cli/serve.py", line 111, in cmd
    uvloop.run(run_server(args))
  File "{SITE}/vllm/entrypoints/openai/api_server.py", line 457, in run_server
    await run_server_worker(listen_address, sock, args, **uvicorn_kwargs)
  File "{SITE}/vllm/entrypoints/openai/api_server.py", line 476, in run_server_worker
    async with build_async_engine_client(
               ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/entrypoints/openai/api_server.py", line 96, in build_async_engine_client
    async with build_async_engine_client_from_engine_args(
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/entrypoints/openai/api_server.py", line 137, in build_async_engine_client_from_engine_args
    async_llm = AsyncLLM.from_vllm_config(
                ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/async_llm.py", line 222, in from_vllm_config
    return cls(
           ^^^^
  File "{SITE}/vllm/v1/engine/async_llm.py", line 148, in __init__
    self.engine_core = EngineCoreClient.make_async_mp_client(
                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core_client.py", line 124, in make_async_mp_client
    return AsyncMPClient(*client_args)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/v1/engine/core_client.py", line 490, in __init__
    with launch_core_engines(vllm_config, executor_class, log_stats) as (
  File "{SITE}/vllm/v1/engine/utils.py", line 925, in launch_core_engines
    wait_for_engine_startup(
  File "{SITE}/vllm/v1/engine/utils.py", line 984, in wait_for_engine_startup
    raise RuntimeError(
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {{}}"""
    raw(tb_api)


def crash(kind):
    if kind == "kv_cache":
        a = ENGINE.args
        crash_startup(kv_too_small_message(ENGINE.max_model_len or 32768, ENGINE.tp, a.gpu_memory_utilization))
    else:
        crash_oom()
    os._exit(int(env_float("NIXL_EMULATOR_CRASH_EXIT", 1)))


# ---------------------------------------------------------------- side channel (optional)


def side_channel_server():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = ENGINE.side_host
    srv.bind(("0.0.0.0" if host in ("localhost", "") else host, ENGINE.side_port))
    srv.listen(16)

    def serve():
        while True:
            conn, _ = srv.accept()
            with conn:
                try:
                    req = json.loads(conn.makefile().readline() or "{}")
                    rid = req.get("request_id")
                    with ENGINE.lock:
                        ok = req.get("engine_id") == ENGINE.engine_id and rid in ENGINE.sent
                        if ok:
                            # Read, so not expired: NixlConnector's notification frees the blocks.
                            ENGINE.unread.pop(rid, None)
                    if ok:
                        # The consumer's READ leaves this node on the KV transport's device.
                        count_bytes(kv_interface(), "tx", float(req.get("bytes") or 0))
                    conn.sendall((json.dumps({"ok": ok, "engine_id": ENGINE.engine_id}) + "\n").encode())
                except (OSError, ValueError):
                    pass
    threading.Thread(target=serve, daemon=True).start()


def pull_kv(params, rid, nbytes):
    """Consumer side: READs `nbytes` of KV. Returns True when the KV 'transfer' succeeded."""
    if os.environ.get("NIXL_EMULATOR_SIDE_CHANNEL") != "1":
        return True
    host, port = params.get("remote_host"), params.get("remote_port")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall((json.dumps({"engine_id": params.get("remote_engine_id"),
                                   "request_id": params.get("remote_request_id"), "bytes": nbytes}) + "\n").encode())
            reply = json.loads(s.makefile().readline() or "{}")
        if reply.get("ok"):
            return True
        vlog("ERROR", "nixl_connector.py:815",
             f"RuntimeError: Remote NIXL agent engine ID mismatch. Expected {params.get('remote_engine_id')},"
             f"received {reply.get('engine_id')}.", proc="Worker_TP0", pid=WORKER_PID)
    except (OSError, ValueError, TypeError):
        ctx = {"failure_type": "handshake_setup_failed", "request_id": None,
               "engine_id": ENGINE.engine_id, "remote_engine_id": params.get("remote_engine_id")}
        vlog("ERROR", "nixl_connector.py:1234", f"NIXL transfer failure: handshake_setup_failed | Context: {ctx}",
             proc="Worker_TP0", pid=WORKER_PID)
    return False


# ---------------------------------------------------------------- HTTP


def log_preprocess_error(message, param):
    """logger.exception("Error in preprocessing prompt inputs") in completion/serving.py."""
    check = "_token_len_check" if param == "input_tokens" else (
        "_text_len_check" if param == "input_text" else "__post_init__")
    tb = f"""Traceback (most recent call last):
  File "{SITE}/vllm/entrypoints/openai/completion/serving.py", line 111, in render_completion_request
    engine_prompts = await self._preprocess_completion(
                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/entrypoints/openai/engine/serving.py", line 981, in _preprocess_completion
    return await renderer.render_cmpl_async(
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/vllm/renderers/params.py", line 337, in {check}
    raise VLLMValidationError(
vllm.exceptions.VLLMValidationError: {message}"""
    vlog_exc("ERROR", "serving.py:118", "Error in preprocessing prompt inputs", tb, "APIServer", PID)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def setup(self):
        super().setup()
        # one SSE chunk per token must leave at once (uvicorn sets TCP_NODELAY too)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # replaced by access_log
        pass

    def access_log(self, code):
        if ENGINE.args.disable_uvicorn_access_log:
            return
        phrase = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
                  405: "Method Not Allowed"}.get(code, "")
        raw(f'INFO:     {self.client_address[0]}:{self.client_address[1]} - '
            f'"{self.command} {self.path} HTTP/1.1" {code} {phrase}', stream=sys.stdout)

    def send_body(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response_only(code)
        self.send_header("date", self.date_time_string())
        self.send_header("server", "uvicorn")
        self.send_header("content-length", str(len(data)))
        self.send_header("content-type", ctype)
        self.end_headers()
        self.wfile.write(data)
        self.access_log(code)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/health", "/ping"):
            return self.send_body(200, b"", "application/json")
        if path == "/version":
            return self.send_body(200, json.dumps({"version": VLLM_VERSION}, separators=(",", ":")))
        if path == "/v1/models":
            now = int(time.time())
            data = [{"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": ENGINE.model,
                     "parent": None, "max_model_len": ENGINE.max_model_len,
                     "permission": [{"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
                                     "created": now, "allow_create_engine": False, "allow_sampling": True,
                                     "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                     "allow_fine_tuning": False, "organization": "*", "group": None,
                                     "is_blocking": False}]} for name in ENGINE.served_all]
            return self.send_body(200, json.dumps({"object": "list", "data": data}, separators=(",", ":")))
        if path == "/metrics":
            return self.send_body(200, metrics_text(), "text/plain; version=0.0.4; charset=utf-8")
        return self.send_body(404, json.dumps({"detail": "Not Found"}, separators=(",", ":")))

    def do_POST(self):
        path = self.path.split("?")[0]
        n = int(self.headers.get("content-length") or 0)
        raw_body = self.rfile.read(n) if n else b""
        count_bytes("net", "rx", len(raw_body))
        if path != "/v1/completions":
            return self.send_body(404, json.dumps({"detail": "Not Found"}, separators=(",", ":")))
        try:
            req = json.loads(raw_body or b"{}")
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return self.send_body(400, error_body("JSON decode error", "BadRequestError", 400))
        self.completions(req)

    # --------------------------------------------------------- /v1/completions

    def completions(self, req):
        E = ENGINE
        E.expire_unread()
        model = req.get("model")
        if model is not None and model not in E.served_all:
            return self.send_body(404, error_body(f"The model `{model}` does not exist.", "NotFoundError", 404,
                                                  "model"))
        prompt = req.get("prompt")
        if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int)):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt:
            prompts = prompt
        else:
            return self.send_body(400, error_body("Either prompt or prompt_embeds must be provided and non-empty.",
                                                  "BadRequestError", 400))
        max_tokens = req.get("max_tokens")
        if max_tokens is None:
            max_tokens = 16
        token_lists, texts = [], []
        for p in prompts:
            if isinstance(p, str):
                token_lists.append(p.split())
                texts.append(p)
            else:
                token_lists.append([str(t) for t in p])
                texts.append(None)
        for toks, text in zip(token_lists, texts):
            err = too_long_error(len(toks), int(max_tokens), E.max_model_len,
                                 None if text is None else len(text))
            if err:
                msg, param, value = err
                log_preprocess_error(validation_message(msg, param, value), param)
                return self.send_body(400, error_body(validation_message(msg, param, value), "BadRequestError",
                                                      400, param))
        rid = "cmpl-" + (self.headers.get("X-Request-Id") or req.get("request_id") or uuid.uuid4().hex)
        with E.lock:
            E.num_requests += 1
            nth = E.num_requests
        every = int(env_float("NIXL_EMULATOR_FAIL_EVERY", 0))
        fail = every > 0 and nth % every == 0
        stream = bool(req.get("stream"))
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        created = int(time.time())
        kvp = req.get("kv_transfer_params") or None

        if fail and (os.environ.get("NIXL_EMULATOR_FAIL_MODE") == "http500" or not stream):
            time.sleep(ms(env_float("NIXL_EMULATOR_TTFT_BASE_MS", 2.0)))
            vlog("ERROR", "serving.py:715", f"Request {rid} failed with an internal error during generation")
            with E.lock:
                E.counters["failed"] += 1
            return self.send_body(500, error_body("Internal server error", "InternalServerError", 500))

        with E.lock:
            E.running += 1
        try:
            self.generate(req, rid, created, token_lists, int(max_tokens), stream, include_usage, kvp, fail)
        finally:
            with E.lock:
                E.running -= 1

    def generate(self, req, rid, created, token_lists, max_tokens, stream, include_usage, kvp, fail):
        E = ENGINE
        # A known capacity: requests are admitted at most CAPACITY_RPS per second, one slot
        # each; above that rate they queue, and the wait is part of their TTFT.
        capacity = env_float("NIXL_EMULATOR_CAPACITY_RPS", 0.0)
        if capacity > 0:
            with E.lock:
                slot = max(time.time(), E.next_slot)
                E.next_slot = slot + 1.0 / capacity
            time.sleep(max(0.0, slot - time.time()))
        # ---- prefill (all prompts of the request together)
        ttft = ms(env_float("NIXL_EMULATOR_TTFT_BASE_MS", 2.0))
        per_tok = env_float("NIXL_EMULATOR_PREFILL_MS_PER_TOKEN", 0.01)
        remote = bool(E.is_consumer() and kvp and kvp.get("do_remote_prefill") and kvp.get("remote_block_ids")
                      and all(k in kvp for k in ("remote_engine_id", "remote_request_id", "remote_host",
                                                 "remote_port")))
        all_hashes, n_prompt, n_cached = [], 0, 0
        # KV faults of disaggregated serving that only the server's counters show:
        # none_transferred: the consumer ignores the producer's KV and prefills itself;
        # recompute: it pulls the KV and still prefills again (vLLM #26896).
        fault = os.environ.get("NIXL_EMULATOR_KV_FAULT", "")
        remote = remote and fault != "none_transferred"
        source = dict(local_compute=0, local_cache_hit=0, external_kv_transfer=0)
        for toks in token_lists:
            cached, hashes = E.cached_tokens(toks)
            n_prompt += len(toks)
            n_cached += cached
            all_hashes.append(hashes)
            new = len(toks) - cached
            source["local_cache_hit"] += cached
            if remote:
                # Every rank READs its own heads of the blocks (from tp_size / tp producer ranks
                # each when the producer has more); the executor sums the ranks' transfer records
                # (KVOutputAggregator), so the bytes are all ranks' and each READ is one transfer.
                pulled = kv_bytes_over_ranks(new, E.tp)
                if pull_kv(kvp, rid, pulled):
                    pull_ms = env_float("NIXL_EMULATOR_KV_PULL_MS_PER_TOKEN", 0.001) * new
                    ttft += ms(pull_ms)
                    # As NixlConnector: every token but the last comes from the producer; the
                    # last is computed here for the forward pass.
                    source["external_kv_transfer"] += max(new - 1, 0)
                    source["local_compute"] += min(new, 1)
                    reads = max(E.tp, int(kvp.get("tp_size") or 1))
                    count_bytes(kv_interface(), "rx", pulled)
                    with E.lock:
                        E.counters["nixl_bytes"] += pulled
                        E.counters["nixl_xfers"] += reads
                        E.counters["nixl_xfer_s"] += reads * pull_ms / 1000.0
                    if fault == "recompute":
                        source["local_compute"] += new
                        ttft += ms(per_tok * new)
                    continue
                with E.lock:
                    E.counters["nixl_failed"] += 1
                if (E.kv or {}).get("kv_load_failure_policy", "recompute") == "fail":
                    fail = True
            source["local_compute"] += new
            ttft += ms(per_tok * new)
        with E.lock:
            for k, v in source.items():
                E.counters[k] += v
            E.counters["prompt_tokens"] += n_prompt
            E.interval["prompt_tokens"] += n_prompt
            E.counters["prefix_queries"] += n_prompt
            E.counters["prefix_hits"] += n_cached
            E.interval["prefix_queries"] += n_prompt
            E.interval["prefix_hits"] += n_cached
        time.sleep(ttft)
        for h in all_hashes:
            E.remember(h)

        n_choices = len(token_lists)
        fail_after = int(env_float("NIXL_EMULATOR_FAIL_AFTER_TOKENS", 0)) if fail else None
        decode = env_float("NIXL_EMULATOR_DECODE_MS", 3.0)
        contention = env_float("NIXL_EMULATOR_CONTENTION", 0.05)
        # Run-to-run noise: each request decodes at its own lognormal pace (not seeded,
        # so repeated runs differ, as on a shared GPU).
        decode *= random.lognormvariate(0.0, env_float("NIXL_EMULATOR_JITTER", 0.0))
        rng = random.Random(rid)
        texts = [[] for _ in range(n_choices)]

        if stream:
            self.send_response_only(200)
            self.send_header("date", self.date_time_string())
            self.send_header("server", "uvicorn")
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.access_log(200)

        def emit(s):
            data = s.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            for t in range(max_tokens):
                if t > 0:
                    time.sleep(ms(decode * (1 + contention * max(E.running - 1, 0))))
                if fail_after is not None and t >= fail_after:
                    vlog("ERROR", "serving.py:715", f"Request {rid} failed with an internal error during generation")
                    with E.lock:
                        E.counters["failed"] += 1
                    if stream:
                        emit("data: " + error_body("Internal server error", "InternalServerError", 500,
                                                   compact=False) + "\n\n")
                        emit("data: [DONE]\n\n")
                        emit("")
                    else:
                        self.send_body(500, error_body("Internal server error", "InternalServerError", 500))
                    return
                last = t == max_tokens - 1
                for i in range(n_choices):
                    word = " t%d" % rng.randrange(1000)
                    texts[i].append(word)
                    if stream:
                        chunk = {"id": rid, "object": "text_completion", "created": created, "model": req.get("model") or E.served,
                                 "choices": [{"index": i, "text": word, "logprobs": None,
                                              "finish_reason": "length" if last else None, "stop_reason": None,
                                              "prompt_token_ids": None, "token_ids": None}],
                                 "usage": None}
                        emit("data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) + "\n\n")
                with E.lock:
                    E.counters["generation_tokens"] += n_choices
                    E.interval["generation_tokens"] += n_choices
        except (BrokenPipeError, ConnectionResetError):
            return
        n_out = max_tokens * n_choices
        usage = {"prompt_tokens": n_prompt, "total_tokens": n_prompt + n_out, "completion_tokens": n_out}
        if E.args.enable_prompt_tokens_details and n_cached:
            usage["prompt_tokens_details"] = {"cached_tokens": n_cached}
        kv_out = None
        if E.is_producer() and kvp and kvp.get("do_remote_decode") and max_tokens > 0:
            # length-capped finish (max_tokens reached): NixlConnector keeps the blocks for the consumer
            blocks = []
            with E.lock:
                for toks in token_lists:
                    nb = (len(toks) + E.block_size - 1) // E.block_size
                    blocks.extend(range(E.next_block, E.next_block + nb))
                    E.next_block += nb
            rid0 = rid + "-0"
            with E.lock:
                E.sent[rid0] = blocks
                if os.environ.get("NIXL_EMULATOR_SIDE_CHANNEL") == "1":
                    E.unread[rid0] = time.time() + abort_timeout()
            kv_out = {"do_remote_prefill": True, "do_remote_decode": False, "remote_block_ids": blocks,
                      "remote_engine_id": E.engine_id, "remote_request_id": rid0, "remote_host": E.side_host,
                      "remote_port": E.side_port, "tp_size": E.tp}
        with E.lock:
            E.counters["success"] += 1
        try:
            if stream:
                if include_usage:
                    final = {"id": rid, "object": "text_completion", "created": created,
                             "model": req.get("model") or E.served, "choices": [], "usage": usage}
                    emit("data: " + json.dumps(final, ensure_ascii=False, separators=(",", ":")) + "\n\n")
                emit("data: [DONE]\n\n")
                emit("")
            else:
                if "prompt_tokens_details" not in usage:
                    usage["prompt_tokens_details"] = None
                resp = {"id": rid, "object": "text_completion", "created": created,
                        "model": req.get("model") or E.served,
                        "choices": [{"index": i, "text": "".join(texts[i]), "logprobs": None,
                                     "finish_reason": "length", "stop_reason": None, "token_ids": None,
                                     "prompt_logprobs": None, "prompt_token_ids": None} for i in range(n_choices)],
                        "service_tier": None, "system_fingerprint": None, "usage": usage,
                        "kv_transfer_params": kv_out}
                self.send_body(200, json.dumps(resp, ensure_ascii=False, separators=(",", ":")))
        except (BrokenPipeError, ConnectionResetError):
            pass


# ---------------------------------------------------------------- the node's counters

EFA_DEVICE = "rdmap0s31"
NET_INTERFACE = "ens5"
COUNTER_LOCK = threading.Lock()


def counter_file(kind, direction):
    root = os.environ.get("NIXL_EMULATOR_SYSFS_ROOT")
    if not root:
        return None
    if kind == "efa":
        return os.path.join(root, "class/infiniband", EFA_DEVICE, "ports/1/hw_counters", f"{direction}_bytes")
    return os.path.join(root, "class/net", NET_INTERFACE, "statistics", f"{direction}_bytes")


def count_bytes(kind, direction, n):
    """Adds n to a sysfs byte counter (created at 0), replaced whole so a reader never sees half a number."""
    path = counter_file(kind, direction)
    if path is None:
        return
    with COUNTER_LOCK:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path) as f:
                value = int(f.read().strip() or 0)
        except FileNotFoundError:
            value = 0
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{value + int(n)}\n")
        os.replace(tmp, path)


def kv_interface():
    """Where a pulled KV arrives: the EFA device when the transport is EFA's, else the ENI."""
    if os.environ.get("NIXL_EMULATOR_KV_FAULT") == "tcp_fallback":
        return "net"
    if os.environ.get("NIXL_BACKEND") == "LIBFABRIC":
        return "efa" if os.environ.get("FI_PROVIDER") == "efa" else "net"
    return "efa" if "srd" in os.environ.get("UCX_TLS", "").split(",") else "net"


def init_counters():
    for kind in ("efa", "net"):
        for direction in ("rx", "tx"):
            count_bytes(kind, direction, 0)


def record_gpu_memory(args):
    d = os.environ.get("NIXL_FAKE_GPU_DIR")
    if not d:
        return
    os.makedirs(d, exist_ok=True)
    mib = int(args.gpu_memory_utilization * env_float("NIXL_FAKE_GPU_MIB", 46068))
    with open(os.path.join(d, str(os.getpid())), "w") as f:
        f.write(f"{ENGINE.tp} {mib}\n")


def metrics_text():
    E = ENGINE
    E.expire_unread()
    lab = f'engine="0",model_name="{E.served}"'
    c = E.counters
    rows = [
        ("vllm:num_requests_running", "gauge", E.running),
        ("vllm:num_requests_waiting", "gauge", 0),
        ("vllm:prompt_tokens_total", "counter", c["prompt_tokens"]),
        ("vllm:generation_tokens_total", "counter", c["generation_tokens"]),
        ("vllm:prefix_cache_queries_total", "counter", c["prefix_queries"]),
        ("vllm:prefix_cache_hits_total", "counter", c["prefix_hits"]),
    ]
    out = []
    for name, kind, v in rows:
        out.append(f"# TYPE {name} {kind}")
        out.append(f"{name}{{{lab}}} {float(v)}")
    out.append("# TYPE vllm:request_success_total counter")
    out.append(f'vllm:request_success_total{{{lab},finished_reason="length"}} {float(c["success"])}')
    out.append("# HELP vllm:prompt_tokens_by_source_total Number of prompt tokens by source.")
    out.append("# TYPE vllm:prompt_tokens_by_source_total counter")
    for source in ("local_compute", "local_cache_hit", "external_kv_transfer"):
        out.append(f'vllm:prompt_tokens_by_source_total{{{lab},source="{source}"}} {float(c[source])}')
    if E.kv and E.kv.get("kv_connector") == "NixlConnector":
        # NixlConnector's own metrics (nixl_connector.py NixlPromMetrics), as histograms.
        for name, count, total in (("vllm:nixl_xfer_time_seconds", c["nixl_xfers"], c["nixl_xfer_s"]),
                                   ("vllm:nixl_bytes_transferred", c["nixl_xfers"], c["nixl_bytes"])):
            out.append(f"# TYPE {name} histogram")
            out.append(f'{name}_bucket{{{lab},le="+Inf"}} {float(count)}')
            out.append(f"{name}_count{{{lab}}} {float(count)}")
            out.append(f"{name}_sum{{{lab}}} {float(total)}")
        for name, key in (("vllm:nixl_num_failed_transfers_total", "nixl_failed"),
                          ("vllm:nixl_num_failed_notifications_total", "nixl_failed_notifications"),
                          ("vllm:nixl_num_kv_expired_reqs_total", "nixl_kv_expired")):
            out.append(f"# TYPE {name} counter")
            out.append(f"{name}{{{lab}}} {float(c[key])}")
    return "\n".join(out) + "\n"


def stats_logger():
    interval = env_float("VLLM_LOG_STATS_INTERVAL", 10.0)
    while True:
        time.sleep(interval)
        E = ENGINE
        with E.lock:
            iv = dict(E.interval)
            for k in E.interval:
                E.interval[k] = 0
            running = E.running
        if not running and not iv["prompt_tokens"] and not iv["generation_tokens"]:
            continue  # idle: vLLM logs at debug level
        hit = 100.0 * iv["prefix_hits"] / iv["prefix_queries"] if iv["prefix_queries"] else 0.0
        vlog("INFO", "loggers.py:259",
             "Engine 000: Avg prompt throughput: %.1f tokens/s, Avg generation throughput: %.1f tokens/s, "
             "Running: %d reqs, Waiting: %d reqs, GPU KV cache usage: %.1f%%, Prefix cache hit rate: %.1f%%"
             % (iv["prompt_tokens"] / interval, iv["generation_tokens"] / interval, running, 0,
                min(100.0, running * 0.4), hit))


# ---------------------------------------------------------------- start-up


def main(argv):
    global ENGINE
    args, unknown, argv = parse_args(argv)
    for flag, value in (("--kv-transfer-config", args.kv_transfer_config), ("--hf-overrides", args.hf_overrides)):
        try:
            if value is not None and not isinstance(json.loads(value), dict):
                raise ValueError("not a JSON object")
        except ValueError as e:  # vLLM's parser rejects it (exit 2); check_args.py gives its exact text
            sys.stderr.write(f"usage: vllm serve [model_tag] [options]\nvllm serve: error: argument {flag}: {e}\n")
            return 2
    ENGINE = E = Engine(args)
    host = args.host or "0.0.0.0"

    # reserve the port first (vLLM binds its socket before building the engine)
    httpd = ThreadingHTTPServer((host, args.port), Handler, bind_and_activate=False)
    httpd.daemon_threads = True
    httpd.allow_reuse_address = True
    try:
        httpd.server_bind()
    except OSError as e:
        raw(f"OSError: [Errno {e.errno}] {e.strerror}")
        return 1

    if os.environ.get("VLLM_DISABLE_LOG_LOGO") == "1":
        vlog("INFO", "utils.py:287", f"vLLM server version {VLLM_VERSION}, serving model {args.model}")
    else:
        vlog("INFO", "utils.py:287",
             "\n       █     █     █▄   ▄█\n"
             f" ▄▄ ▄█ █     █     █ ▀▄▀ █  version {VLLM_VERSION}\n"
             f"  █▄█▀ █     █     █     █  model   {args.model}\n"
             "   ▀▀  ▀▀▀▀▀ ▀▀▀▀▀ ▀     ▀\n")
    nd = {"model_tag": args.model}
    flag_names = [a.split("=")[0] for a in argv if a.startswith("--")]
    for f in flag_names:
        k = f[2:].replace("-", "_")
        if k.startswith("no_"):
            nd[k[3:]] = False
        elif hasattr(args, k):
            v = getattr(args, k)
            if k == "kv_transfer_config" and v:
                v = "KVTransferConfig(%s)" % ", ".join(f"{a}={b!r}" for a, b in json.loads(v).items())
            elif k == "hf_overrides" and v:
                v = json.loads(v)
            elif k == "max_model_len":
                v = parse_len(v)
            nd[k] = v
    nd["model"] = args.model
    vlog("INFO", "utils.py:223", f"non-default args: {nd}")

    # ---- the model config: derived max_model_len, as vllm/config/model.py
    derived = float(int(env_float("NIXL_EMULATOR_MAX_POSITION_EMBEDDINGS", 32768)))
    if args.hf_overrides:
        try:
            rs = json.loads(args.hf_overrides).get("rope_scaling") or {}
        except (ValueError, AttributeError):
            rs = {}
        if rs and rs.get("rope_type", rs.get("type")) not in ("su", "longrope", "llama3"):
            if rs.get("rope_type", rs.get("type")) == "yarn" and "original_max_position_embeddings" in rs:
                derived = rs["original_max_position_embeddings"]
            derived = derived * rs.get("factor", 1.0)
    vlog("INFO", "model.py:529", f"Resolved architecture: {os.environ.get('NIXL_EMULATOR_ARCH', 'Qwen2ForCausalLM')}")
    mml = parse_len(args.max_model_len)
    if mml is None or mml == -1:
        mml = int(derived)
    elif mml > derived:
        msg = (f"User-specified max_model_len ({mml}) is greater than the derived max_model_len "
               f"(max_position_embeddings={derived} or model_max_length=None in model's config.json).")
        warning = ("VLLM_ALLOW_LONG_MAX_MODEL_LEN must be used with extreme caution. If the model uses "
                   "relative position encoding (RoPE), positions exceeding derived_max_model_len lead to nan. "
                   "If the model uses absolute position encoding, positions exceeding derived_max_model_len "
                   "will cause a CUDA array out-of-bounds error.")
        if os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0").lower() in ("1", "true"):
            vlog("WARNING", "model.py:2025", f"{msg} {warning}")
        else:
            raw(f"""Traceback (most recent call last):
  File "/usr/local/bin/vllm", line 10, in <module>
    sys.exit(main())
             ^^^^^^
  File "{SITE}/vllm/entrypoints/cli/main.py", line 73, in main
    args.dispatch_function(args)
  File "{SITE}/vllm/entrypoints/cli/serve.py", line 111, in cmd
    uvloop.run(run_server(args))
  File "{SITE}/vllm/entrypoints/openai/api_server.py", line 122, in build_async_engine_client_from_engine_args
    vllm_config = engine_args.create_engine_config(usage_context=usage_context)
                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/pydantic/_internal/_dataclasses.py", line 121, in __init__
    s.__pydantic_validator__.validate_python(ArgsKwargs(args, kwargs), self_instance=s)
pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig
  Value error, {msg} To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. {warning} [type=value_error, input_value=ArgsKwargs((), {{'model': ...rocessor_cls': None}}), input_type=ArgsKwargs]
    For further information visit https://errors.pydantic.dev/2.12/v/value_error""")
            return 1
    E.max_model_len = mml
    vlog("INFO", "model.py:1549", f"Using max model len {mml}")

    vlog("INFO", "core.py:98",
         f"Initializing a V1 LLM engine (v{VLLM_VERSION}) with config: model='{args.model}', "
         f"tokenizer='{args.model}', max_seq_len={mml}, tensor_parallel_size={E.tp}, "
         f"enforce_eager={args.enforce_eager}, device_config=cuda, seed=0, served_model_name={E.served}, "
         f"enable_prefix_caching={E.prefix_caching}, enable_chunked_prefill="
         f"{True if args.enable_chunked_prefill is None else args.enable_chunked_prefill}",
         proc="EngineCore", pid=ENGINE_PID)
    if E.kv and E.kv.get("kv_connector") == "NixlConnector":
        vlog("INFO", "nixl_connector.py:861", "Initializing NIXL wrapper", proc="Worker_TP0", pid=WORKER_PID)
        vlog("INFO", "nixl_connector.py:862", f"Initializing NIXL worker {E.engine_id}", proc="Worker_TP0",
             pid=WORKER_PID)
        if os.environ.get("NIXL_EMULATOR_SIDE_CHANNEL") == "1" and E.is_producer() \
                and os.environ.get("NIXL_EMULATOR_KV_FAULT") != "side_channel_down":
            side_channel_server()

    crash_after = env_float("NIXL_EMULATOR_CRASH_AFTER", -1)
    kind = os.environ.get("NIXL_EMULATOR_CRASH_KIND")
    if crash_after >= 0:
        def crash_timer():
            time.sleep(max(0.0, crash_after - (time.time() - T0)))
            crash(kind or ("oom" if E.ready else "kv_cache"))
        threading.Thread(target=crash_timer, daemon=True).start()

    need, avail, est = kv_budget(mml, E.tp, args.gpu_memory_utilization)
    time.sleep(env_float("NIXL_EMULATOR_START_DELAY", 0.0))
    if need > avail:
        crash_startup(kv_too_small_message(mml, E.tp, args.gpu_memory_utilization))
        return 1
    vlog("INFO", "kv_cache_utils.py:1307", f"GPU KV cache size: {est:,} tokens", proc="EngineCore", pid=ENGINE_PID)
    vlog("INFO", "kv_cache_utils.py:1313",
         "Maximum concurrency for %s tokens per request: %.2fx" % (f"{mml:,}", est / mml), proc="EngineCore",
         pid=ENGINE_PID)
    vlog("INFO", "core.py:279", "init engine (profile, create kv cache, warmup model) took %.2f seconds"
         % (time.time() - T0), proc="EngineCore", pid=ENGINE_PID)
    vlog("INFO", "api_server.py:481", "Supported tasks: ['generate']")
    vlog("INFO", "api_server.py:487", f"Starting vLLM API server 0 on http://{host}:{args.port}")
    vlog("INFO", "launcher.py:38", "Available routes are:")
    for route, methods in (("/health", "GET"), ("/metrics", "GET"), ("/version", "GET"),
                           ("/v1/models", "GET"), ("/v1/completions", "POST")):
        vlog("INFO", "launcher.py:47", f"Route: {route}, Methods: {methods}")
    uvicorn_log(f"Started server process [{PID}]")
    uvicorn_log("Waiting for application startup.")
    httpd.server_activate()
    init_counters()
    record_gpu_memory(args)
    E.ready = True
    uvicorn_log("Application startup complete.")
    threading.Thread(target=stats_logger, daemon=True).start()
    try:
        httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import signal

    def _term(*_):
        vlog("INFO", "launcher.py:122", "Shutting down FastAPI HTTP server.")
        uvicorn_log("Shutting down")
        os._exit(0)
    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    sys.exit(main(sys.argv[1:]))
