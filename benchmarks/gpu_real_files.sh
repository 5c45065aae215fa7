#!/bin/bash
# The GPU session prepared for issue 18's remaining bars (paper-protocol denoising, SR x4 on every
# downscaler): four training runs side by side on one lent GPU, each with the same wall-clock budget
# (train.minutes stretches its schedule), then every run folder packed into $OUT.
#   denoise-large  configs/denoise_large.yaml: a 1.5x-cost denoiser from scratch on the shipped mix
#   denoise        the shipped denoise, its last stage (configs/denoise_polish.yaml) at batch 16
#   x4-large       configs/upscale_x4_large.yaml: a 2.3x-parameter (1.8x-cost) x4 model from scratch, 11 downscalers
#   x4             the shipped upscale-x4, its last stage (configs/upscale_x4_files2.yaml) at batch 32
# The two continuations are the controls: they say how much of a gain is GPU steps, not model size.
# The training data is ../shared/data/CBSD432 repacked in .gpudata/ and the wheel the machine lacks is in
# .whl/ (the device machine sees only the repository): benchmarks/gpu_prepare.sh makes both, here.
# usage: bash benchmarks/gpu_real_files.sh MINUTES       (6 fits one 10-minute call)
#        DEV=cpu D=../shared/data/CBSD432 RUNS=/tmp/dry OUT=/tmp/dry_out bash benchmarks/gpu_real_files.sh 0.3   (a dry run)
set -u
M=${1:-6}
source "$(dirname "$0")/gpu_env.sh"   # OUT, DEV, D, PYTHONPATH; prints the GPU
R=${RUNS:-runs/gpu}
LIMIT=$(python3 -c "print(int($M*60+${GRACE:-90}))")
job() {  # name config extra-args...
  local name=$1 cfg=$2; shift 2
  mkdir -p $R/$name
  timeout --foreground -k 60 -s TERM $LIMIT python3 -m vitrestore train $cfg -q --device $DEV --force \
    --set train.out=$R/$name --set "data.train=[$D]" --set train.minutes=$M --set train.checkpoint_minutes=1 \
    --set train.threads=0 "$@" > $R/$name/log.txt 2>&1 &
}
S="--set train.steps=40000 --set train.ema_start=500 --set train.val_every=2000 --set train.log_every=200"
job denoise-large configs/denoise_large.yaml --set data.workers=4
job denoise configs/denoise_polish.yaml $S --set data.batch=16 --set data.workers=4
job x4-large configs/upscale_x4_large.yaml --set data.workers=3
job x4 configs/upscale_x4_files2.yaml $S --set data.batch=32 --set data.crop=192 --set data.workers=3
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; uptime
wait
for r in $R/*/; do
  n=$(basename $r); echo "== $n"; tail -n 3 $r/log.txt
  grep val_psnr $r/metrics.jsonl 2>/dev/null | tail -n 3 | cut -c1-120
  ls $r/samples/*.png 2>/dev/null | head -n -1 | xargs -r rm -f   # keep the last sample grid
  # the EMA weights, config, card, metrics, log and last grid: under 16 MiB a file, as $OUT allows
  # (checkpoint.pt, with the optimiser state, is 4x the weights; a CPU stage starts from the weights)
  tar -cf $OUT/$n.tar --exclude=checkpoint.pt --exclude=tensorboard -C $R $n
done
ls -la $OUT
