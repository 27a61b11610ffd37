#!/usr/bin/env bash
# The layering rule of the source tree: a folder under src/ includes only itself and the folders
# before it in the order given (CMakeLists.txt passes SPARSEDIT_LAYERS, then cli). Prints every
# include that points upward or into an unknown folder, and fails if there is one.
# Usage: scripts/check_layers.sh SRC_DIR layer1 layer2 ... (lowest first)
set -euo pipefail
src="$1"
shift
declare -A rank
i=0
for layer in "$@"; do
  rank[$layer]=$i
  i=$((i + 1))
done
bad=0
while IFS= read -r file; do
  rel="${file#"$src"/}"
  from="${rel%%/*}"
  if [ -z "${rank[$from]+x}" ]; then
    echo "layering: $rel is in folder '$from', which is not a layer ($*)"
    bad=1
    continue
  fi
  while IFS= read -r inc; do
    to="${inc%%/*}"
    if [ -z "${rank[$to]+x}" ]; then
      echo "layering: $rel includes \"$inc\" from '$to', which is not a layer"
      bad=1
    elif [ "${rank[$to]}" -gt "${rank[$from]}" ]; then
      echo "layering: $rel ($from) includes \"$inc\" ($to), a layer above it"
      bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\/[^"]*\)".*/\1/p' "$file")
done < <(find "$src" -name '*.h' -o -name '*.cpp' | sort)
if [ "$bad" -ne 0 ]; then
  echo "layering: FAILED (order: $*)"
  exit 1
fi
echo "layering: every include points down the order $*"
