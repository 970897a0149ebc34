#!/usr/bin/env bash
# One entry point for a fresh machine of this project's kind (Debian, root, no AWS account):
#   bash scripts/dev.sh demo   install, start the local sandbox, bake its sample pools
#   bash scripts/dev.sh test   install, run the whole test suite (it starts the sandbox itself)
#   bash scripts/dev.sh setup  install only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

APT_PACKAGES=(containerd docker.io docker-registry openssh-server skopeo apache2-utils
              openssl ca-certificates iproute2 util-linux sudo)

setup() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v terraform >/dev/null || { echo "setup: terraform is missing (expected at /usr/local/bin/terraform)" >&2; exit 1; }
  # cdktf-cli: `cdktf synth/diff/deploy` on cdktf.json (the rollout tests check `cdktf synth` and
  # fail in CI without it). npm registry only; about 420 MB.
  command -v cdktf >/dev/null || npm i -g --no-fund --no-audit cdktf-cli@0.21.0 >/dev/null
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[rollout,test]"
  containerd_builds
  checkov_env
}

# checkov, pyproject's `checkov` extra, in a virtualenv of its own (its pins would downgrade the
# project's boto3 and break pytest): the tests run .tools/checkov/bin/checkov.
CHECKOV=$ROOT/.tools/checkov
checkov_env() {
  [ -x "$CHECKOV/bin/checkov" ] && return
  local req
  req=$(python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["checkov"])')
  echo "setup: installing $req into $CHECKOV"
  python3 -m venv "$CHECKOV"
  "$CHECKOV/bin/pip" install -q --disable-pip-version-check $req
}

# The node's containerd for the sandbox's builder (bake_sandbox/node_containerd.py): Debian's
# 2.1 (sid; what EKS AL2023 AMIs run) and 1.7 (trixie; the second runtime of the test matrix),
# unpacked into .tools/, never installed. Their binaries need only glibc, which Debian 12 has.
# apt reads a private sources list and state, so the host's apt configuration stays as it is.
fetch_containerd() {  # fetch_containerd VERSION SUITE
  local dir=$ROOT/.tools/containerd-$1
  [ -x "$dir/usr/bin/containerd" ] && return
  local apt=$ROOT/.tools/apt-$2
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
  echo "deb http://deb.debian.org/debian $2 main" > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
  echo "setup: fetching containerd $1 (Debian $2) into $dir"
  apt-get "${opts[@]}" update -qq
  (cd "$apt" && apt-get "${opts[@]}" download -qq "containerd/$2")
  dpkg-deb -x "$apt"/containerd_"$1".*.deb "$dir"
  rm -rf "$apt"
}
containerd_builds() {
  fetch_containerd 1.7 trixie
  fetch_containerd 2.1 sid
}

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CHECKPOINT_DISABLE=1
# terraform's providers from the local mirror (terraform/cli.tfrc) unless a real config is set.
if [ -z "${TF_CLI_CONFIG_FILE:-}" ] || [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
  export TF_CLI_CONFIG_FILE=$ROOT/terraform/cli.tfrc
fi

case "${1:-}" in
  setup) setup ;;
  demo)
    setup
    py=$VENV/bin/python
    "$py" -m bake sandbox up
    eval "$("$py" -m bake sandbox env)"
    dir=$("$py" -m bake sandbox path)
    echo "== bake: python -m bake build --config $dir/bake.toml"
    "$py" -m bake build --config "$dir/bake.toml"
    echo "== roll out: python main.py, terraform apply (against the sandbox's moto)"
    export BAKE_CONFIG=$dir/bake.toml BAKE_LOCK=$dir/amis.lock.json
    "$py" main.py
    terraform -chdir=cdktf.out/stacks/nodepools init -input=false -no-color >/dev/null
    terraform -chdir=cdktf.out/stacks/nodepools apply -input=false -no-color -auto-approve | tail -n 3
    "$py" scripts/show_rollout.py "$dir/bake.toml"
    ;;
  test)
    setup
    shift
    pytest=("$VENV/bin/python" -m pytest -ra --durations=20)
    [ $# -eq 0 ] || exec "${pytest[@]}" "$@"
    # The whole suite as two processes at once (tests/conftest.py, --part): the tests that use
    # the machine's one sandbox, and the rest, which share nothing with them. Each has its own
    # basetemp (two sessions would prune each other's numbered folders); the rest's report
    # follows the sandbox's.
    rest_log=$(mktemp /tmp/bake-tests-rest.XXXXXX.log)
    "${pytest[@]}" --part=rest --basetemp=/tmp/bake-tests-rest >"$rest_log" 2>&1 &
    rest=$!
    sandbox_rc=0; "${pytest[@]}" --part=sandbox --basetemp=/tmp/bake-tests-sandbox || sandbox_rc=$?
    rest_rc=0; wait "$rest" || rest_rc=$?
    echo "== the tests that need no sandbox (--part=rest), run at the same time:"
    cat "$rest_log"
    echo "== exit codes: sandbox part $sandbox_rc, rest $rest_rc"
    [ "$sandbox_rc" -eq 0 ] && [ "$rest_rc" -eq 0 ]
    ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
