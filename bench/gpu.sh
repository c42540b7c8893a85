#!/usr/bin/env bash
# The GPU checks and benchmarks of docs/performance.md ("GPU"), in one go: for a
# machine lent for a few minutes, where nothing can be installed. Each step runs
# under its own time limit, writes its output to OUTDIR/STEP.log and a line to
# OUTDIR/summary.txt (exit code, seconds), and a failing step does not stop the next.
#
#   bench/gpu.sh OUTDIR [MNIST_DIR]
#
# Uses the machine's python3 with JAX and the source tree as it is (PYTHONPATH=src):
#   env       the device, JAX and NumPy versions
#   tests     the reference, training and run_many, and caching tests on the GPU
#   many      bench/bench_many.py --vmap-only 100 1000 (run_many against separate runs)
#   speed     bench/bench_speed.py (single runs against the memory floor)
#   topk      bench/bench_topk_search.py 1000 (top-k's threshold search against a plain
#             bisection of fixed length: is the search's while loop what is slow there?)
#   reproduce thrifty reproduce --scale quick --workers 1 on MNIST_DIR, if given,
#             until its time runs out (into /tmp/gpu-reproduction)
#   count     the records it wrote, by status, and their summed run time
# Set GPU_SH_STEPS to a subset ("env many") to run fewer; GPU_SH_SCALE=0.1 shortens
# every limit (a dry run on a CPU). On an H200 a test or a benchmark case took 5-11 s,
# compiling included, and the steps' limits are sized from that: all of them do not
# fit one 10-minute command; the tests alone, or many and speed, or topk, do.
set -u
out=${1:?usage: bench/gpu.sh OUTDIR [MNIST_DIR]}
data=${2:-}
steps=${GPU_SH_STEPS:-env tests many speed topk reproduce count}
scale=${GPU_SH_SCALE:-1}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -z "$data" ] || data=$(cd "$data" && pwd) || exit 2
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
summary=$out/summary.txt

step() { # step NAME SECONDS COMMAND...: run COMMAND unless NAME is left out of $steps
    local name=$1 limit
    limit=$(python3 -c "print(max(5, round($2 * $scale)))")
    shift 2
    case " $steps " in *" $name "*) ;; *) return 0 ;; esac
    local start=$SECONDS
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    printf '%-10s exit %-4s %5ss of %ss\n' "$name" "$rc" "$((SECONDS - start))" "$limit" |
        tee -a "$summary"
}

step env 60 sh -c 'nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem \
    --format=csv 2>&1; python3 -c "import jax, numpy, sys
print(sys.version.split()[0], \"jax\", jax.__version__, \"numpy\", numpy.__version__, jax.devices())"'
step tests 420 python3 -m pytest -q -p no:cacheprovider --durations=5 \
    tests/test_reference_equivalence.py tests/test_train.py \
    tests/test_caching.py
step many 120 python3 bench/bench_many.py --vmap-only 100 1000
step speed 300 python3 bench/bench_speed.py
step topk 180 python3 bench/bench_topk_search.py 1000
if [ -n "$data" ]; then
    rm -rf /tmp/gpu-reproduction
    step reproduce 120 python3 -m thrifty reproduce --scale quick --workers 1 \
        --data-dir "$data" --out /tmp/gpu-reproduction
    step count 30 python3 -c "
import collections, glob, json
records = [json.load(open(p)) for p in glob.glob('/tmp/gpu-reproduction/**/records/*.json',
                                                 recursive=True)]
print(len(records), 'records', dict(collections.Counter(r['status'] for r in records)),
      'summed run time', round(sum(r.get('wall_time_s') or 0 for r in records), 1), 's')"
fi
