#!/bin/bash
# Here (not on the device), before the call that runs benchmarks/gpu_real_files.sh: what travels beside
# the repository. A call takes at most 64 MiB in all; the tracked tree is about 35 MB and CBSD432
# 32 MB, so the training images are repacked losslessly (jpegtran -optimize -progressive: the same
# DCT coefficients, the same pixels, 9% smaller; checked below with the trainer's own decoder), and
# the one package the GPU image lacks travels as kornia 0.7.1, whose import needs no kornia_rs
# (5.3 MB more in 0.9). Both folders are ignored through .git/info/exclude and named in `carry`:
#   bash benchmarks/gpu_prepare.sh
#   run(command="bash benchmarks/gpu_real_files.sh 6", carry=[".gpudata", ".whl"], timeout_s=600)
# Needs jpegtran (Debian: apt-get install libjpeg-turbo-progs) and pip's access to the package index.
set -eu
SRC=${1:-../shared/data/CBSD432}
command -v jpegtran >/dev/null || { echo "gpu_prepare: jpegtran not found (apt-get install libjpeg-turbo-progs)" >&2; exit 1; }
rm -rf .gpudata/CBSD432 .whl && mkdir -p .gpudata/CBSD432 .whl
for f in "$SRC"/*.jpg; do
  jpegtran -copy none -optimize -progressive -outfile ".gpudata/CBSD432/$(basename "$f")" "$f"
done
python3 - "$SRC" <<'PY'
import sys
from pathlib import Path
import cv2, numpy as np
src = sorted(Path(sys.argv[1]).glob("*.jpg"))
bad = [p.name for p in src if not np.array_equal(cv2.imread(str(p)), cv2.imread(f".gpudata/CBSD432/{p.name}"))]
if bad or not src:
    sys.exit(f"gpu_prepare: repacked images differ from {sys.argv[1]}: {bad[:5] or 'no images'}")
print(f"{len(src)} images repacked, every one decodes to the same pixels")
PY
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl kornia==0.7.1
mkdir -p .git/info && touch .git/info/exclude
for p in /.gpudata/ /.whl/; do grep -qxF "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
total=$(( $(git ls-files -z | xargs -0 cat | wc -c) + $(cat .gpudata/CBSD432/* .whl/* | wc -c) ))
echo "travels: $((total / 1048576)) MiB of 64"
[ $total -lt $((64 * 1048576)) ] || { echo "gpu_prepare: over the 64 MiB a call may take" >&2; exit 1; }
