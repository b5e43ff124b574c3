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
USER waflow
ENV WAFLOW_DATA_DIR=/home/waflow/data
ENTRYPOINT ["waflow"]
