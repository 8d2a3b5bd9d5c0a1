#!/usr/bin/env bash
# Run HERE, before a GPU session: put the wheels the GPU machine lacks into .whl/ and build the training data pack
# into train_pack/ (both ignored by git), the pack sized so that the copied tree, the wheels and the pack together
# stay within the LIMIT_MIB (64) a GPU machine receives. Then, in the GPU session, run ONE command:
#   run(command="OUT=$OUT bash model/train/gpu_run.sh", carry=[".whl", "train_pack"], timeout_s=600)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
LIMIT_MIB=${LIMIT_MIB:-64}
MARGIN_MIB=${MARGIN_MIB:-1.5}  # room for what the branches merged later add to the tree
PY=${PY:-3.12}  # the GPU machine's Python

fetch() {  # a wheel for the GPU machine's Python, without its dependencies
    pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d "$1" "$2"
}

rm -rf .whl /tmp/s2vc-wheels && mkdir -p .whl /tmp/s2vc-wheels
for spec in "diffusers==$(pip show diffusers | sed -n 's/^Version: //p')" \
            "constriction==$(pip show constriction | sed -n 's/^Version: //p')" importlib_metadata zipp; do
    fetch .whl "$spec"
done
# stlpips-pytorch's 61 MiB wheel is almost all VGG weights; the training loss loads only the AlexNet ones
fetch /tmp/s2vc-wheels "stlpips-pytorch==$(pip show stlpips-pytorch | sed -n 's/^Version: //p')"
python -m model.train.wheels /tmp/s2vc-wheels/stlpips_pytorch-*.whl -o .whl \
    --drop '*/vgg_shift_tolerant.pth' '*.DS_Store'

bytes_of() { xargs -0 -r stat -c %s | awk '{s += $1} END {print s + 0}'; }
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | bytes_of)
wheels=$(find .whl -type f -print0 | bytes_of)
pack_mib=$(python -c "print(round($LIMIT_MIB - $MARGIN_MIB - ($tree + $wheels) / 2**20, 2))")
echo "tree $(python -c "print(round($tree / 2**20, 2))") MiB, wheels $(python -c "print(round($wheels / 2**20, 2))") MiB: the pack gets $pack_mib MiB"
rm -rf train_pack
python -m model.train.pack -o train_pack --max-mib "$pack_mib"
