#!/usr/bin/env python3
"""Mutation fuzzing of `ingressd -t` over the golden inputs (run from the repo root, best
against an ASan build): python3 tests/conf/fuzz.py SEED ROUNDS   (env B=build-asan).
A run is bad when the exit code is not 0/1 or a sanitizer reports; the input is kept
as /tmp/fz-bad-N.yaml."""
import random, subprocess, glob, sys, os
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
files = glob.glob('tests/conf/valid/*.yaml') + glob.glob('tests/conf/invalid/*.yaml')
bad = 0
for it in range(int(sys.argv[2]) if len(sys.argv) > 2 else 300):
    src = open(random.choice(files)).read()
    lines = src.split('\n')
    for _ in range(random.randint(1, 4)):
        op = random.randint(0, 5)
        i = random.randrange(len(lines))
        if op == 0 and len(lines) > 1: del lines[i]
        elif op == 1: lines.insert(i, random.choice(lines))
        elif op == 2 and lines[i]:
            j = random.randrange(len(lines[i])); lines[i] = lines[i][:j] + random.choice(' :-[]{}"\'#&*!|>0a\t') + lines[i][j+1:]
        elif op == 3: lines[i] = '  ' + lines[i]
        elif op == 4: lines[i] = lines[i].lstrip()
        elif op == 5: lines[i] = lines[i].replace(': ', ': [', 1)
    open('/tmp/fz.yaml', 'w').write('\n'.join(lines))
    p = subprocess.run([os.environ.get('B', 'build-asan') + '/ingressd', '-t', '-c', '/tmp/fz.yaml'], capture_output=True, text=True, timeout=60)
    if p.returncode not in (0, 1) or 'Sanitizer' in p.stderr or 'runtime error' in p.stderr:
        bad += 1
        os.rename('/tmp/fz.yaml', f'/tmp/fz-bad-{it}.yaml')
        print('BAD', it, p.returncode, p.stderr[-1500:])
        if bad > 3: break
print('done, bad =', bad)
