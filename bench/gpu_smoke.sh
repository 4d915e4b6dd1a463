#!/bin/bash
# Every CLI operation on the bundled model on a CUDA device: exit code, wall time, pictures in DIR.
# CI has no GPU, so this is how a GPU host (or a session lent one) checks that nothing assumes the CPU:
#     bash bench/gpu_smoke.sh [DIR] [DEVICE]      # DIR defaults to /tmp/dreamcord-gpu-smoke, DEVICE to cuda
# It found upscale's network output read back with .numpy() while still on the GPU (session 19).
dir=${1:-/tmp/dreamcord-gpu-smoke}
device=${2:-cuda}
mkdir -p "$dir" && cd "$dir" || exit 2
failed=0
one() {  # name, CLI arguments...
  local name=$1 started=$SECONDS
  shift
  timeout 120 python3 -m bot.cli "$@" --device "$device" > "$name.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || failed=1
  echo "$name: exit $rc, $((SECONDS - started)) s"
  [ $rc -eq 0 ] || tail -4 "$name.log"
}
prompt="a green circle on a white background"
one imagine imagine "a red star at the top left on a white background --seed 5" -o grid.png
one imagine-fp32 imagine "a red star at the top left on a white background --seed 5" -o grid32.png --dtype float32
one tile imagine "a blue star on a yellow background --tile --seed 3" -o tile.png
one single imagine "$prompt --seed 4" -n 1 -o single.png
one vary vary single.png "$prompt" --strength strong -o vary.png
one region vary single.png "a purple square" --region 25,25,75,75 -o region.png
one upscale upscale single.png --factor 2 --mode subtle -o upscale.png
one upscale-creative upscale single.png --factor 2 --mode creative -o upscale-creative.png
one zoom outpaint single.png "$prompt" zoom -o zoom.png
one aspect outpaint single.png "$prompt" aspect --aspect 16:9 -o wide.png
one describe describe single.png
exit $failed
