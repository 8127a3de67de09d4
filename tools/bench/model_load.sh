#!/usr/bin/env bash
# Times ModelFile.load in process (mapping, header, message, graph rebuild and verification,
# bounds, and every tensor's CRC-32), ten loads with and ten without the weight checksums,
# on a resnet18 .model it compiles first. Needs a release build of the package:
#   swift build -c release --product glassbox && tools/bench/model_load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${BUILD:-.build}/release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$R/glassbox" compile graphs/resnet18.graph -o "$out/resnet18.model"
swiftc -O -I "$R/Modules" tools/bench/model_load.swift "$R"/GlassboxFormat.build/*.o "$R"/GlassboxIR.build/*.o \
  "$R"/SwiftProtobuf.build/*.o -o "$out/model_load"
"$out/model_load" "$out/resnet18.model"
for i in 1 2 3 4 5; do /usr/bin/time -f "glassbox info: %e s" "$R/glassbox" info "$out/resnet18.model" > /dev/null; done
