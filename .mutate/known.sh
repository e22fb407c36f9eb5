#!/usr/bin/env bash
# Applies each known mutation in .mutate/known/*.patch (git apply), runs the
# test its "# test: PKG REGEX" line names, expects that test to fail, and
# reverts the patch. Exits non-zero if a mutation survives (its test passes)
# or a patch no longer applies or compiles. Used by `task mutate:known`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
applied=
trap '[ -z "$applied" ] || git apply -R "$applied"' EXIT
for p in .mutate/known/*.patch; do
	read -r pkg run < <(sed -n 's/^# test: //p' "$p")
	if [ -z "${pkg:-}" ] || [ -z "${run:-}" ]; then
		echo "$p: no '# test: PKG REGEX' line"; status=1; continue
	fi
	if ! git apply --check "$p" 2>/dev/null; then
		echo "$p: does not apply to the working tree (the code moved: update the patch)"; status=1; continue
	fi
	git apply "$p" && applied=$p
	if ! go test -c -o /dev/null "$pkg" >/dev/null 2>&1; then
		echo "$p: the mutated $pkg does not compile"; status=1
	elif go test "$pkg" -run "$run" -count=1 >/dev/null 2>&1; then
		echo "SURVIVED $p: go test $pkg -run '$run' passes on the mutated code"; status=1
	else
		echo "killed   $p: go test $pkg -run '$run' fails, as it should"
	fi
	git apply -R "$p" && applied=
done
exit $status
