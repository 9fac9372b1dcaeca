# The fnscope image used by compose.yaml for the collector, processor and api roles.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fnscope ./fnscope
COPY collector ./collector
COPY processors ./processors
COPY query ./query
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY simulator ./simulator
RUN pip install --no-cache-dir . && useradd --system fnscope
USER fnscope
ENTRYPOINT ["fnscope"]
CMD ["--help"]
