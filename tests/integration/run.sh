#!/bin/sh
# Runs every tests/integration/NN-*.py in order against build/ingressd (B=build dir),
# or only those whose number is given: run.sh 20 21
set -e
cd "$(dirname "$0")/../.."
B=${B:-build}
export INGRESSD_BIN="$PWD/$B/ingressd" PODSERVER_BIN="$PWD/$B/bench/podserver"
fail=0
for t in tests/integration/[0-9][0-9]-*.py; do
    [ -e "$t" ] || continue
    if [ $# -gt 0 ]; then
        n=$(basename "$t" | cut -c1-2)
        case " $* " in *" $n "*) ;; *) continue ;; esac
    fi
    echo "== $t"
    if ! timeout 600 python3 "$t"; then
        echo "FAILED: $t"
        fail=1
    fi
done
exit $fail
