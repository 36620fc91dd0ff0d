#!/bin/sh
# The suite's, the client's and the tools' Python pass pyflakes: nothing
# undefined (two branches once merged cleanly, one using an import the
# other had removed, and the NameError showed only in the integration
# run's tenth minute), and no unused import or variable, no f-string
# without a placeholder, no name shadowed (each once hid a test's intent).
src=${1:?usage: python_names.sh SOURCE_DIR}
out=$(/usr/bin/python3 -m pyflakes "$src/tests/integration" \
	"$src/tools/python/agentsup" "$src/tools/bench" "$src/tools/agents" \
	2>&1)
[ -z "$out" ] && exit 0
echo "$out"
exit 1
