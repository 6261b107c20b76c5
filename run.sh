#!/usr/bin/env bash
# One entry point for a fresh clone (Python 3.10-3.13 and Node.js 22+ needed; 20 still runs, with a warning):
#   ./run.sh local   set everything up, then run the whole tutorial locally (Azurite + Batch emulator)
#   ./run.sh test    set everything up, then run the test suite
# Extra arguments go to the client (local) or to pytest (test).
set -euo pipefail
cd "$(dirname "$0")"

command=${1:-}
[ $# -gt 0 ] && shift

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
    echo "error: Python 3.10 to 3.13 is needed ($python is $("$python" --version 2>&1 || echo missing)); set PYTHON=..." >&2
    exit 2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! [ "$node_major" -ge 20 ] 2>/dev/null; then  # also when it is not a number
    echo "error: Node.js 20 or later is needed for Azurite, 22 or later is best (Debian/Ubuntu: sudo apt-get install" \
        "nodejs npm)" >&2
    exit 2
fi
if [ "$node_major" -lt 21 ]; then
    echo "warning: Azurite 3.36 asks for Node.js 21 or later and this is Node.js $node_major; the tests pass on" \
        "Node.js 20, but it is past its end of life: Node.js 22 or later is the one to install" >&2
fi

# Install once; again only when the pinned requirements change.
stamp=.venv/.installed
wanted=$(cat requirements.txt requirements-dev.txt package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Setting up: Python packages in .venv, Azurite in node_modules ..."
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    npm ci --no-audit --no-fund --loglevel=error
    echo "$wanted" > "$stamp"
fi

# The Azure CLI, for the test that drives the emulator with it unmodified: its own virtual environment in
# .cache (it is a client under test, not a dependency of the project), installed once.
azure_cli_version=2.91.0
if [ "$command" = test ] && [ ! -x ".cache/azure-cli-$azure_cli_version/bin/az" ]; then
    echo "Setting up: the Azure CLI $azure_cli_version in .cache (once, a few minutes) ..."
    rm -rf ".cache/azure-cli-$azure_cli_version"
    "$python" -m venv ".cache/azure-cli-$azure_cli_version"
    ".cache/azure-cli-$azure_cli_version/bin/python" -m pip install --quiet --disable-pip-version-check \
        "azure-cli==$azure_cli_version"
fi
export BATCH_TUTORIAL_AZ=".cache/azure-cli-$azure_cli_version/bin/az"

# Older azure-batch SDKs, for tests/test_sdk_eras.py (each era at its own api-version, unmodified): each in
# its own virtual environment in .cache with the msrest of its time, installed once (the stamp names the pins).
sdk_era_pins="msrest==0.7.1 msrestazure==0.6.4.post1 azure-common==1.1.28"
for sdk_era in 4.1.3 10.0.0 12.0.0 14.2.0; do
    era_dir=".cache/azure-batch-$sdk_era"
    if [ "$command" = test ] && [ "$(cat "$era_dir/.installed" 2>/dev/null)" != "$sdk_era_pins" ]; then
        echo "Setting up: azure-batch $sdk_era in .cache (once) ..."
        rm -rf "$era_dir"
        "$python" -m venv "$era_dir"
        # shellcheck disable=SC2086 # the pins are words
        "$era_dir/bin/python" -m pip install --quiet --disable-pip-version-check "azure-batch==$sdk_era" $sdk_era_pins
        echo "$sdk_era_pins" > "$era_dir/.installed"
    fi
done

# The portal's browser tests need Chromium and chromedriver, which only .ci/run installs: say so in one line
# (tests/test_portal.py looks for the same commands; it skips them, or fails when CI is set).
browser=$(command -v chromium || command -v chromium-browser || true)
driver=$(command -v chromedriver || command -v chromium-driver || true)
if [ "$command" = test ] && { [ -z "$browser" ] || [ -z "$driver" ]; }; then
    if [ -n "${CI:-}" ]; then
        echo "Chromium or chromedriver is missing: the browser tests (tests/test_portal.py) fail, since CI is set" \
            "(.ci/run installs them)" >&2
    else
        echo "The browser tests (tests/test_portal.py) are skipped: Chromium or chromedriver is missing" \
            "(sudo apt-get install chromium chromium-driver, or run .ci/run, which installs them)"
    fi
fi

case "$command" in
    local) exec .venv/bin/python python_tutorial_client.py --local --yes "$@" ;;
    test)  exec .venv/bin/python -m pytest "$@" ;;
    *)     echo "usage: ./run.sh local | ./run.sh test" >&2; exit 2 ;;
esac
