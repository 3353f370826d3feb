#!/bin/bash
# Usage (device machine, from the repo root, keras/keras-hub/namex/optree wheels in .whl):
#   bash benchmarks/t5_sweep/run.sh benchmarks/t5_sweep/configs1.txt
# Each configs line: name hidden ff layers heads batch lr steps corpus dropout tied [seed]
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3
CFG=$(realpath "$1"); cd "$(dirname "$0")"
while read -r cfg; do
  [ -z "$cfg" ] && continue
  set -- $cfg
  python3 sweep.py $cfg > "$OUT/$1.json" 2> "$OUT/$1.err" &
done < "$CFG"
wait
cat $OUT/*.json
for f in $OUT/*.err; do s=$(grep -v -i warn "$f" | grep -i error | tail -2); [ -n "$s" ] && echo "$f: $s"; done
true
