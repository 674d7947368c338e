#!/bin/sh
# End-to-end demonstration of the vLLM test world (ports 18150-18159, 127.0.0.1 only).
#   sh tests/support/vllm_world/smoke.sh
# Needs python3 and the vLLM 0.16.0 venv (NIXL_VLLM_VENV, default
# /root/.cache/nixl-test/vllm-0.16.0) for the real `vllm bench serve` client, the
# tokenizer build and the proxy. Exit 0 when every check passes.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
VENV=${NIXL_VLLM_VENV:-/root/.cache/nixl-test/vllm-0.16.0}
export NIXL_VLLM_VENV="$VENV"
export PATH="$HERE/bin:$PATH"
MODEL=Qwen/Qwen2.5-32B-Instruct
WORK=$(mktemp -d /tmp/nixl-vllm-smoke.XXXXXX)
export NIXL_TEST_TOKENIZER="$WORK/tokenizer"
PIDS=""
FAILS=0

cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT INT TERM

ok()   { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

wait_health() {  # url, seconds
  i=0
  while [ "$i" -lt $(($2 * 10)) ]; do
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

start_server() {  # port log [extra vllm serve args...]; env from the caller
  port=$1; log=$2; shift 2
  vllm serve "$MODEL" --host 127.0.0.1 --port "$port" --tensor-parallel-size 4 --max-model-len 4096 \
    --gpu-memory-utilization 0.9 --max-num-batched-tokens 4096 --enforce-eager --enable-chunked-prefill \
    --no-enable-prefix-caching "$@" > "$log" 2>&1 &
  SERVER_PID=$!
  PIDS="$PIDS $SERVER_PID"
}

stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

bench() {  # port result-file
  vllm bench serve --backend vllm --base-url "http://127.0.0.1:$1" --model "$MODEL" --dataset-name random \
    --random-input-len 64 --random-output-len 16 --ignore-eos --num-prompts 8 --num-warmups 2 \
    --max-concurrency 2 --temperature 0 --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 \
    --save-result --save-detailed --result-filename "$2" > "$2.out" 2>&1
}

field() {  # file expr -> prints the value of a python expression over the result dict d
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

[ -x "$VENV/bin/vllm" ] || { echo "smoke: no vLLM venv at $VENV" >&2; exit 3; }
cd "$WORK" || exit 1
echo "work dir: $WORK"

# 1. tokenizer
"$VENV/bin/python" "$HERE/make_tokenizer.py" "$NIXL_TEST_TOKENIZER" || { echo "tokenizer build failed"; exit 1; }

# 2. unified server, real client
start_server 18150 unified.log; P=$SERVER_PID
wait_health http://127.0.0.1:18150 20 || fail "emulator did not come up"
bench 18150 "$WORK/unified.json" || fail "bench exited $? (see unified.json.out)"
c=$(field unified.json "d['completed'], d['failed'], sum(d['input_lens'])//len(d['input_lens']), d['total_output_tokens']")
[ "$c" = "8 0 64 128" ] && ok "unified bench: completed/failed/input_len/output_tokens = $c" \
  || fail "unified bench: completed/failed/input_len/output_tokens = $c (want 8 0 64 128)"

# 3. max_model_len: 4000 prompt words + 128 output > 4096
body=$(python3 -c "import json; print(json.dumps({'model': '$MODEL', 'prompt': ' '.join(['w7'] * 4000), 'max_tokens': 128}))")
code=$(curl -s -o too_long.json -w '%{http_code}' http://127.0.0.1:18150/v1/completions \
  -H 'Content-Type: application/json' -d "$body")
msg=$(field too_long.json "d['error']['message']")
want="You passed 3969 input tokens and requested 128 output tokens. However, the model's context length is only 4096 tokens, resulting in a maximum input length of 3968 tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value=3969)"
[ "$code" = 400 ] && [ "$msg" = "$want" ] && ok "too long: 400 $(cat too_long.json)" \
  || fail "too long: $code $(cat too_long.json)"
stop "$P"

# 4. injected generation errors
NIXL_EMULATOR_FAIL_EVERY=3 start_server 18150 failing.log; P=$SERVER_PID
wait_health http://127.0.0.1:18150 20 || fail "failing emulator did not come up"
bench 18150 "$WORK/failing.json" || fail "bench (failing) exited $?"
c=$(field failing.json "d['completed'], d['failed'], len([e for e in d['errors'] if e])")
set -- $c
[ "$2" -gt 0 ] && [ "$3" -gt 0 ] && [ $(($1 + $2)) -eq 8 ] && ok "fail every 3rd: completed/failed/errors = $c" \
  || fail "fail every 3rd: completed/failed/errors = $c"
stop "$P"

# 5. crash injection
NIXL_EMULATOR_CRASH_AFTER=1 start_server 18150 crash.log; P=$SERVER_PID
wait_health http://127.0.0.1:18150 20 || fail "crashing emulator did not come up"
wait "$P"; rc=$?
if [ "$rc" -ne 0 ] && grep -q "torch.OutOfMemoryError: CUDA out of memory" crash.log \
   && ! curl -sf http://127.0.0.1:18150/health >/dev/null 2>&1; then
  ok "crash: exit $rc, $(grep -c 'OutOfMemoryError' crash.log) OOM lines, $(grep -c EngineDeadError crash.log) EngineDeadError lines"
else
  fail "crash: exit $rc; $(tail -2 crash.log)"
fi

# 6. disaggregated: producer 18151, consumer 18152, nixl's own proxy on 18150
KV='{"kv_connector": "NixlConnector", "kv_role": "ROLE", "kv_rank": RANK, "kv_parallel_size": 2, "kv_ip": "127.0.0.1", "kv_buffer_device": "cpu", "kv_buffer_size": 5000000000, "kv_connector_extra_config": {"backends": ["UCX"]}}'
kvp=$(echo "$KV" | sed 's/ROLE/kv_producer/; s/RANK/0/')
kvc=$(echo "$KV" | sed 's/ROLE/kv_consumer/; s/RANK/1/')
NIXL_EMULATOR_SIDE_CHANNEL=1 VLLM_NIXL_SIDE_CHANNEL_HOST=127.0.0.1 VLLM_NIXL_SIDE_CHANNEL_PORT=18153 \
  start_server 18151 prefill.log --kv-transfer-config "$kvp"; PP=$SERVER_PID
NIXL_EMULATOR_SIDE_CHANNEL=1 VLLM_NIXL_SIDE_CHANNEL_HOST=127.0.0.1 VLLM_NIXL_SIDE_CHANNEL_PORT=18154 \
  start_server 18152 decode.log --kv-transfer-config "$kvc"; PD=$SERVER_PID
python3 - "$ROOT/stdlib/vllm.nixl" > nixl_proxy.py <<'EOF'
import sys
text = open(sys.argv[1]).read()
start = text.index("cat > nixl_proxy.py <<'NIXL_PROXY'")
body = text[text.index("'''", start) + 3:]
print(body[:body.index("'''")])
EOF
"$VENV/bin/python" nixl_proxy.py --prefill-url http://127.0.0.1:18151 --decode-url http://127.0.0.1:18152 \
  --port 18150 > proxy.log 2>&1 &
PX=$!; PIDS="$PIDS $PX"
if wait_health http://127.0.0.1:18151 20 && wait_health http://127.0.0.1:18152 20 && wait_health http://127.0.0.1:18150 30; then
  bench 18150 "$WORK/disagg.json" || fail "bench (disagg) exited $?"
  c=$(field disagg.json "d['completed'], d['failed']")
  np=$(grep -c '"POST /v1/completions HTTP/1.1" 200' prefill.log)
  nd=$(grep -c '"POST /v1/completions HTTP/1.1" 200' decode.log)
  nf=$(grep -c 'NIXL transfer failure' decode.log)
  [ "$c" = "8 0" ] && [ "$np" -ge 10 ] && [ "$np" -eq "$nd" ] && [ "$nf" -eq 0 ] \
    && ok "disagg bench via proxy: completed/failed = $c; producer/consumer requests $np/$nd; KV failures $nf" \
    || fail "disagg: completed/failed = $c; producer/consumer requests $np/$nd; KV failures $nf"
else
  fail "disaggregated servers did not come up: $(tail -3 proxy.log)"
fi
stop "$PX"; stop "$PP"; stop "$PD"

echo "smoke: $FAILS failure(s); logs in $WORK"
[ "$FAILS" -eq 0 ]
