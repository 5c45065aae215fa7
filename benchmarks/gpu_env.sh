# Sourced by the GPU session scripts (benchmarks/gpu_session.sh, benchmarks/gpu_real_files.sh): the
# device machine's environment. Installs the wheels in .whl/ (packages the machine lacks) to
# /tmp/site, makes the repository importable, and says which GPU and packages it found.
# Sets OUT (the folder whose files come back), DEV (training device) and D (training images).
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1
DEV=${DEV:-cuda}
D=${D:-.gpudata/CBSD432}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch,kornia;print('torch',torch.__version__,'kornia',kornia.__version__,'cuda',torch.cuda.is_available())"
