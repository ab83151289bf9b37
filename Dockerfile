# The operator image: `recontext` (the CLI; the Helm chart runs `recontext operator`) on Node.js 24
# (a maintained LTS line), as a non-root user. Build: docker build -t recontext:dev .
# The defaults are the public Node.js images; test/cluster builds both bases on this machine (no
# registry there) and passes them: BUILD_IMAGE has npm, RUNTIME_IMAGE only Node.js.
ARG BUILD_IMAGE=node:24.22.3-bookworm-slim
ARG RUNTIME_IMAGE=node:24.22.3-bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /app
# Dependencies first (cached while only sources change). --ignore-scripts: `prepare` would compile
# sources not copied yet.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY src src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${RUNTIME_IMAGE}
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/bin bin
RUN ln -s /app/bin/recontext.js /usr/local/bin/recontext
USER 65532:65532
ENTRYPOINT ["recontext"]
CMD ["operator", "--help"]
