# kthena-router image: Node 20 on Debian bookworm (glibc 2.36, the platform the uWebSockets.js
# binary in package.json loads on), non-root, compatible with a read-only root filesystem (the
# router writes nothing; /tmp is an emptyDir in the Helm chart).
#
#   docker build -t kthena-router:0.1.0 .

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` (tsc) runs below, once the sources are in.
RUN npm ci --ignore-scripts
COPY src ./src
COPY workers ./workers
# `kthena-router demo` and `sim` run native-bench's engine simulator.
COPY native-bench/src ./native-bench/src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    TMPDIR=/tmp
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force && rm -rf /root/.npm
COPY --from=build /src/dist ./dist
COPY bin ./bin
# The uid/gid the chart's securityContext runs as (65532, "nonroot" by convention).
USER 65532:65532
EXPOSE 8080 9090 8443
ENTRYPOINT ["node", "/app/bin/kthena-router.js"]
CMD ["serve"]
