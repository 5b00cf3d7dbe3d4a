#!/usr/bin/env node
// The `pgferry` command. A file of its own, committed, so that `npm ci` links it into
// node_modules/.bin before anything is built (npm skips a bin whose target does not exist yet);
// the CLI itself is the build's dist/main.js.
require('../dist/main.js');
