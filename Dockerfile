# The pgferry image: one image for every role (controller, capture, applier, registry); the
# command picks the role, e.g. `migrate --spec /etc/pgferry/task.yaml`. See docs/deploy.md.

# Build stage: every workspace compiled, then the dev dependencies (TypeScript, Jest, ...) pruned.
# --ignore-scripts: no dependency needs its install script at run time (the native ones, lz4-napi
# and @node-rs/crc32, ship prebuilt binaries as packages); it spares node-gyp attempts.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json tsconfig.build.json ./
COPY scripts/bin-mode.js scripts/
COPY libs libs
COPY apps apps
RUN npm ci --ignore-scripts --no-audit --no-fund \
  && npm run build \
  && npm prune --omit=dev --no-audit --no-fund \
  && rm -rf libs/*/src apps/*/src libs/*/dist/.tsbuildinfo apps/*/dist/.tsbuildinfo

# Runtime stage: Node, the PostgreSQL 15 client tools the schema phase runs (pg_dump and
# pg_restore of at least the servers' major), tini as PID 1 (forwards SIGTERM: pgferry stops
# cleanly on it), and the compiled workspaces. No compilers, no sources, no npm install.
FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
  && apt-get install -y --no-install-recommends postgresql-client-15 tini \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /var/lib/pgferry /etc/pgferry \
  && chown node:node /var/lib/pgferry
ENV NODE_ENV=production \
  PGFERRY_PG_BIN=/usr/lib/postgresql/15/bin
WORKDIR /opt/pgferry
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/libs libs
COPY --from=build /src/apps apps
# The node user (uid 1000) of the base image; /var/lib/pgferry is its work dir.
USER node
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/pgferry/apps/controller/dist/main.js"]
CMD ["--help"]
