# The operator image: `recontext` (the CLI; the Helm chart runs `recontext operator`) on Node 20,
# as a non-root user. Build: docker build -t recontext:dev .
FROM node:20.19-bookworm-slim AS build
WORKDIR /app
# Dependencies first (cached while only sources change). --ignore-scripts: `prepare` would compile
# sources not copied yet; fuse-native (guest/ffs, unused by the operator) ships prebuilt binaries.
COPY package.json package-lock.json ./
COPY guest/ffs/package.json guest/ffs/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY src src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20.19-bookworm-slim
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
# node_modules/@recontext/ffs links to the workspace: keep its package.json so the link resolves.
COPY --from=build /app/guest/ffs/package.json guest/ffs/
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/bin bin
RUN ln -s /app/bin/recontext.js /usr/local/bin/recontext
USER 65532:65532
ENTRYPOINT ["recontext"]
CMD ["operator", "--help"]
