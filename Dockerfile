# One small image for every stage: `waflow ingest`, `waflow streams`, `waflow sink`.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 waflow
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY ingest ingest
COPY streams streams
COPY schemas schemas
COPY sink sink
COPY infra infra
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /root/.cache
# The data directory exists in the image, owned by waflow: a volume mounted there (the stream
# worker's RocksDB state) starts with this owner, so the non-root worker can write it.
RUN mkdir -p /home/waflow/data && chown 10001:10001 /home/waflow/data
USER 10001:10001
ENV WAFLOW_DATA_DIR=/home/waflow/data
EXPOSE 8080 9000
ENTRYPOINT ["waflow"]
