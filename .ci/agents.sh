#!/usr/bin/env bash
# Install the coding agent that tests/integration/test_claude_code.py drives through the demo,
# pinned, into .ci/node (not committed).  Needs node and npm; does nothing without them.
set -euo pipefail
cd "$(dirname "$0")"
CLAUDE_CODE_VERSION=2.1.197
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the Claude Code test will be skipped"
  exit 0
fi
if [ -x node/node_modules/.bin/claude ] && node/node_modules/.bin/claude --version 2>/dev/null | grep -q "^${CLAUDE_CODE_VERSION} "; then
  exit 0
fi
mkdir -p node
npm install --prefix node --no-audit --no-fund --silent "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"
node/node_modules/.bin/claude --version
