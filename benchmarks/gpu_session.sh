#!/bin/bash
# The GPU session that trained the shipped upscale-x2, upscale-x4, upscale-x4-real and inpaint
# models: four vitrestore training runs side by side on one GPU (an H200), each with a wall-clock
# budget (train.minutes), then every run folder packed into $OUT. The training data is a copy of
# ../shared/data/CBSD432 in .gpudata/ (the device machine sees only the repository), and the
# package is made importable with a tasks symlink: ln -sfn $PWD/tasks vitrestore/tasks.
# usage: bash benchmarks/gpu_session.sh MINUTES      (7.5 for the shipped models)
set -u
M=${1:-8}
source "$(dirname "$0")/gpu_env.sh"   # OUT, DEV, D, PYTHONPATH; prints the GPU
LIMIT=$(python3 -c "print(int($M*60+${GRACE:-90}))")
job() {  # name config extra-args...
  local name=$1 cfg=$2; shift 2
  mkdir -p runs/$name
  timeout --foreground -k 60 -s TERM $LIMIT python3 -m vitrestore train $cfg -q --device $DEV --set train.out=runs/$name \
    --set "data.train=[$D]" --set train.checkpoint_minutes=1 "$@" > runs/$name/log.txt 2>&1 &
}
S="--set train.minutes=$M --set train.ema_start=500 --set train.val_every=2000 --set train.log_every=200"
job upscale-x4 configs/upscale_x4.yaml $S --set train.steps=40000 --set data.batch=32 --set data.workers=2 \
    --set train.init_weights=checkpoints/upscale-x4-step1546.safetensors
job upscale-x2 configs/upscale_x2.yaml $S --set train.steps=40000 --set data.batch=32 --set data.workers=1
job upscale-x4-real configs/upscale_x4_real.yaml $S --set train.steps=3000 --set train.adversarial_steps=6000 \
    --set data.batch=32 --set data.workers=5 --set loss.msssim_weight=0.2 \
    --set train.init_weights=checkpoints/upscale-x4-step1546.safetensors
job inpaint configs/inpaint.yaml $S --set train.steps=12000 --set train.adversarial_steps=12000 \
    --set data.crop=256 --set data.batch=16 --set data.workers=2 --set data.val_size=256
# the CUDA mixed-precision paths, briefly (they have never run before): bf16 and fp16 + GradScaler
job amp-bf16 configs/upscale_x2.yaml --set train.minutes=0.5 --set train.steps=400 --set train.adversarial_steps=400 \
    --set loss.adversarial=nonsaturating --set train.precision=bf16 --set data.batch=8 --set train.val_every=200
job amp-fp16 configs/upscale_x2.yaml --set train.minutes=0.5 --set train.steps=400 --set train.adversarial_steps=400 \
    --set loss.adversarial=nonsaturating --set train.precision=fp16 --set data.batch=8 --set train.val_every=200
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; uptime
wait
for r in runs/*/; do
  n=$(basename $r); echo "== $n"; tail -n 3 $r/log.txt; tail -n 2 $r/metrics.jsonl 2>/dev/null
  grep val_psnr $r/metrics.jsonl 2>/dev/null | tail -n 4 | cut -c1-160
done
for n in upscale-x4 upscale-x2 upscale-x4-real inpaint; do
  [ -d runs/$n ] || continue
  ls runs/$n/samples/*.png 2>/dev/null | head -n -1 | xargs -r rm -f   # keep the last sample grid
  case $n in upscale-x4|upscale-x2) [ -f runs/$n/checkpoint.pt ] && cp runs/$n/checkpoint.pt $OUT/$n-checkpoint.pt;; esac
  tar -cf $OUT/$n.tar --exclude=checkpoint.pt -C runs $n
done
tar -cf $OUT/amp.tar --exclude=checkpoint.pt --exclude="*.safetensors" --exclude=tensorboard -C runs amp-bf16 amp-fp16
ls -la $OUT
