#!/usr/bin/env bash
# Train toy score priors on a GPU for a fixed wall-clock budget, then write the model folder.
#
#   bash benchmarks/gpu_score_prior.sh OUT_DIR [SECONDS] [extra `priorsep train` options]
#
# Ctrl-C semantics do the work: `timeout -s INT` makes the training save its checkpoint and
# stop; a resume with --steps equal to the steps done then only writes the model folder (with
# its card and validation figures). A later call with the same OUT_DIR continues the run.
# The architecture is the bundled toy-score's, wider (96 channels) and on longer batches; the
# batch is 64 x 4096 samples. Run it where `priorsep` is installed with CUDA torch.
set -euo pipefail
out=${1:?OUT_DIR}
seconds=${2:-480}
shift $(( $# >= 2 ? 2 : 1 ))
options=(--prior score --dataset toy --out "$out" --device cuda --steps 200000
         --batch-size 64 --crop-length 4096 --lr 5e-4 --sigma-min 0.005 --sigma-max 8
         --checkpoint-every 500 --eval-every 2000
         --set time_channels=96 --set spectral_channels=96 --set spectral_layers=10
         --set spectral_cycle=10 "$@")
resume=()
[ -f "$out/checkpoint.pt" ] && resume=(--resume)
timeout -s INT "$seconds" priorsep train "${options[@]}" "${resume[@]}" || true
steps=$(python -c "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)['step'])" \
        "$out/checkpoint.pt")
keep="$out/checkpoint.pt.keep"
cp "$out/checkpoint.pt" "$keep"
priorsep train "${options[@]}" --resume --steps "$steps"  # writes the model folder
mv "$keep" "$out/checkpoint.pt"  # so that the next call continues the run
echo "trained to step $steps: $out" >&2
