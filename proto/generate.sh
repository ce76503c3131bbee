#!/usr/bin/env bash
# Regenerate the *_pb2 modules from the .proto sources (needs the dev extra: grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. proto/*.proto
