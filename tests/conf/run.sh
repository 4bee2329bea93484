#!/bin/sh
# Golden tests of `ingressd -t`: each tests/conf/{valid,invalid}/NN-name.yaml has a
# NN-name.expect holding exactly what -t must print on stderr (paths relative to the repo root).
set -e
cd "$(dirname "$0")/../.."
BIN=${B:-build}/ingressd
fail=0; n=0
for f in tests/conf/valid/*.yaml tests/conf/invalid/*.yaml; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    exp="${f%.yaml}.expect"
    want=0; case "$f" in */invalid/*) want=1;; esac
    set +e
    out=$("$BIN" -t -c "$f" 2>&1 >/dev/null); rc=$?
    set -e
    if [ "$rc" -ne "$want" ]; then echo "FAIL $f: exit $rc, want $want"; echo "$out"; fail=1; continue; fi
    if [ -e "$exp" ] && [ "$out" != "$(cat "$exp")" ]; then
        echo "FAIL $f: diagnostics differ"; printf '%s\n' "$out" | diff "$exp" - || true; fail=1
    fi
done
echo "conf golden tests: $n files, $([ $fail -eq 0 ] && echo ok || echo FAILED)"
exit $fail
